"""What LLM work costs, in one place: a request's estimate before it is sent, the guard that
keeps a run within ``--max-cost``, and the price of answers some of which came through the
Batch API.

The estimate of every request, interactive or batched, is its prompt's tokens (the one token
estimate, ``digest.llm.prompts.estimate_tokens``) and half its output limit for the answer,
at the list price or the batch share of it. The list prices are ``digest.models.Price``.
"""

from __future__ import annotations

from dataclasses import dataclass

from digest.models import Price, Usage


def estimate(price: Price, prompt_tokens: int, max_output_tokens: int) -> float:
    """A request's cost before it is sent (USD): its prompt, and half its output limit."""
    return price.estimate(prompt_tokens, max_output_tokens // 2)


@dataclass(frozen=True)
class Priced:
    """What answers cost, some through a batch: in all, and what the batch share saved."""

    cost_usd: float
    saved_usd: float


def batch_priced(price: Price, usage: Usage, batch_calls: int) -> Priced:
    """The cost of ``usage``'s answers when its first ``batch_calls`` came through a batch (at
    the batch share) and the rest interactively (at the list price), and what that saved
    against the list price of all of them."""
    calls = usage.calls
    cost = price.for_batch().cost(Usage.of(calls[:batch_calls])) + price.cost(
        Usage.of(calls[batch_calls:])
    )
    return Priced(round(cost, 6), round(price.cost(usage) - cost, 6))


class CostGuard:
    """Keeps a run's estimated spend within ``cap`` (USD; None: no cap).

    A request's cost is estimated before it is sent and reserved (``reserve``); the real cost
    replaces the estimate when the answers are in (``charge``), whether or not they passed.
    The spend of the days before (a backfill's range) starts it (``spent``)."""

    def __init__(
        self, price: Price | None, max_output_tokens: int, cap: float | None, spent: float = 0.0
    ) -> None:
        self.cap = cap
        self.price = price
        self.max_output_tokens = max_output_tokens
        self.committed = spent

    def estimate(self, prompt_tokens: int, price: Price | None = None) -> float:
        """A request's estimate at the list price, or at ``price`` (a batch's share)."""
        price = price or self.price
        return 0.0 if price is None else estimate(price, prompt_tokens, self.max_output_tokens)

    def fits(self, amount: float) -> bool:
        return self.cap is None or self.committed + amount <= self.cap

    def reserve(self, amount: float) -> bool:
        """Reserve ``amount`` when it fits under the cap; whether it did."""
        if not self.fits(amount):
            return False
        self.committed += amount
        return True

    def charge(self, reserved: float, actual: float | None) -> None:
        """The real cost of what was ``reserved`` (the estimate stays when it is unknown)."""
        self.committed += (actual if actual is not None else reserved) - reserved
