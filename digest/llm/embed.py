"""The embedding pre-rank: which of a day's many candidates the LLM's ranking is asked about.

When ``embedding_model`` is set and more candidates are left after the keywords than
``rank_pool``, each candidate's title and abstract, and the interests, are embedded through
the OpenAI-compatible ``/v1/embeddings`` (the run's client, a request per
``embedding_batch`` texts, retried by the LLM's retry policy), and the ``rank_pool`` most
similar to the interests by cosine similarity are ranked (``digest.runs.ranking``).

Vectors are cached (``EmbeddingCache``: one small file per paper, or interests, and model,
float32 in base64). An answer that is not one finite vector of the same size for each text
sent (a count off, an index out of range, NaN, an empty vector) fails the pre-rank
(``EmbeddingFailed``): the caller keeps the source's order, and says so once.
Each request is reserved against the run's ``--max-cost`` (``CostGuard``) at the embedding
model's input price before it is sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import openai
from pydantic import BaseModel, ConfigDict

from digest.errors import DataFileError, MalformedAnswer
from digest.files import atomic_write_text, parse_model, read_bounded
from digest.llm.cache import cache_key, text_hash
from digest.llm.price import CostGuard
from digest.llm.prompts import estimate_tokens
from digest.llm.server import LlmServer
from digest.models import Price
from digest.net import Attempts, one_line

log = logging.getLogger(__name__)

MAX_DIMENSIONS = 8192  # more than any embedding model's; a bound on the cache's files
EMBED_CHARS = 4000  # of each text sent: a title and an abstract, and a bound on the request


class EmbeddingFailed(Exception):
    """The pre-rank cannot be trusted: why, in one line."""


@dataclass
class EmbedSpend:
    """What the embeddings asked this run, and what they cost."""

    requests: int = 0
    tokens: int = 0
    cost_usd: float | None = 0.0  # None: the model has no price


class _Cached(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dimensions: int
    vector: str  # float32, little-endian, base64


class EmbeddingCache:
    """Vectors kept from one run to the next, by text's owner (a paper, the interests), the
    text and the model."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "embeddings"

    @staticmethod
    def key(owner: str, text: str, model: str) -> str:
        parts = {
            "owner": owner,
            "text_sha256": text_hash(text),
            "model": model,
        }
        return cache_key(parts)

    def get(self, key: str) -> list[float] | None:
        path = self.folder / f"{key}.json"
        try:
            raw = read_bounded(path, folder=self.folder, max_bytes=16 * MAX_DIMENSIONS)
            cached, _ = parse_model(_Cached, path, raw, "cached embedding")
            values = array("f")
            values.frombytes(base64.b64decode(cached.vector, validate=True))
        except FileNotFoundError:
            return None
        except (DataFileError, ValueError) as error:
            log.debug("%s; embedded again", error)
            return None
        vector = values.tolist()
        if len(vector) != cached.dimensions or vector_problem(vector) is not None:
            return None
        return vector

    def put(self, key: str, vector: list[float]) -> None:
        data = base64.b64encode(array("f", vector).tobytes()).decode("ascii")
        try:
            text = _Cached(dimensions=len(vector), vector=data).model_dump_json() + "\n"
            atomic_write_text(self.folder / f"{key}.json", text)
        except OSError as error:
            log.warning(
                "could not cache an embedding in %s (%s)", self.folder, error.strerror or error
            )


def vector_problem(vector: object) -> str | None:
    """What makes ``vector`` no embedding: not a list of finite numbers, empty, too long, or
    all zero (no direction to compare)."""
    if not isinstance(vector, list) or not vector:
        return "an empty embedding"
    if len(vector) > MAX_DIMENSIONS:
        return f"an embedding of {len(vector)} dimensions"
    for value in vector:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "an embedding with a value that is not a number"
        if not math.isfinite(value):
            return "an embedding with a value that is not finite"
    if not any(vector):
        return "an embedding of zeros"
    return None


def read_embeddings(body: object, count: int) -> tuple[list[list[float]], int]:
    """The ``count`` vectors of an answer, in the order of the texts sent, and its prompt
    tokens; ``EmbeddingFailed`` when it is not exactly one good vector for each."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise EmbeddingFailed("the answer has no list of embeddings")
    if len(data) != count:
        raise EmbeddingFailed(f"{len(data)} embeddings for {count} texts")
    vectors: list[list[float] | None] = [None] * count
    for place, item in enumerate(data):
        index = item.get("index", place) if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise EmbeddingFailed(f"an embedding's index {index!r} is not one of the texts")
        if vectors[index] is not None:
            raise EmbeddingFailed(f"two embeddings for text {index}")
        vector = item.get("embedding") if isinstance(item, dict) else None
        problem = vector_problem(vector)
        if problem is not None:
            raise EmbeddingFailed(problem)
        vectors[index] = [float(value) for value in vector]  # type: ignore[union-attr]
    usage = body.get("usage") if isinstance(body, dict) else None
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        tokens = 0
    return [vector for vector in vectors if vector is not None], tokens


def cosine(first: list[float], second: list[float]) -> float:
    """The cosine similarity of two vectors of the same size, within -1 to 1."""
    dot = sum(a * b for a, b in zip(first, second, strict=True))
    norms = math.sqrt(sum(a * a for a in first)) * math.sqrt(sum(b * b for b in second))
    return max(-1.0, min(1.0, dot / norms)) if norms else 0.0


class Embedder:
    """Vectors of texts: the cache's first, the rest asked of the server."""

    def __init__(
        self,
        server: LlmServer,
        model: str,
        price: Price | None,
        cache: EmbeddingCache,
        costs: CostGuard,
        batch: int = 256,
    ) -> None:
        self.server = server
        self.model = model
        self.price = price
        self.cache = cache
        self.costs = costs
        self.batch = max(1, batch)
        self.spend = EmbedSpend(cost_usd=0.0 if price is not None else None)

    async def vectors(self, texts: dict[str, str]) -> dict[str, list[float]]:
        """The vector of every text (by its owner's name), all of one size; ``EmbeddingFailed``
        when some could not be had."""
        found: dict[str, list[float]] = {}
        todo: list[tuple[str, str, str]] = []  # owner, text, cache key
        for owner, text in texts.items():
            text = text[:EMBED_CHARS]
            key = EmbeddingCache.key(owner, text, self.model)
            cached = self.cache.get(key)
            if cached is None:
                todo.append((owner, text, key))
            else:
                found[owner] = cached
        groups = [todo[start : start + self.batch] for start in range(0, len(todo), self.batch)]
        slots = asyncio.Semaphore(self.server.options.concurrency)

        async def one(group: list[tuple[str, str, str]]) -> None:
            async with slots:
                vectors = await self._ask([text for _, text, _ in group])
            for (owner, _, key), vector in zip(group, vectors, strict=True):
                found[owner] = vector
                self.cache.put(key, vector)

        await asyncio.gather(*(one(group) for group in groups))
        sizes = {len(vector) for vector in found.values()}
        if len(sizes) > 1:
            raise EmbeddingFailed(f"embeddings of {len(sizes)} different sizes")
        return found

    async def _ask(self, texts: list[str]) -> list[list[float]]:
        estimate = self.costs.estimate(sum(estimate_tokens(text) for text in texts), self.price)
        if not self.costs.reserve(estimate):
            raise EmbeddingFailed(
                f"not asked: the estimated spend would pass --max-cost {self.costs.cap:g} USD"
            )
        attempts = Attempts()
        tokens = 0
        try:
            body = await self.server.policy.call(
                lambda: self._post(texts),
                attempts=attempts,
                sleep=self.server.sleep,
                deadline=time.monotonic() + self.server.options.retry.max_seconds,
            )
            vectors, tokens = read_embeddings(body, len(texts))
        except openai.APIStatusError as error:
            raise EmbeddingFailed(
                f"HTTP {error.status_code} from {self.server.where} after {attempts.plural}"
            ) from None
        except (openai.OpenAIError, MalformedAnswer) as error:
            raise EmbeddingFailed(self.server.no_answer(error, attempts)) from None
        finally:
            self._charge(estimate, tokens, attempts.count)
        return vectors

    async def _post(self, texts: list[str]) -> Any:
        if self.server.client is None:
            raise RuntimeError("this LlmServer only builds requests: it has no client")
        try:
            response = await asyncio.wait_for(
                self.server.client.embeddings.with_raw_response.create(
                    model=self.model, input=texts, encoding_format="float"
                ),
                self.server.options.timeout,
            )
        except TimeoutError:
            raise openai.APITimeoutError(request=_request(self.server)) from None
        try:
            return json.loads(response.text)
        except ValueError as error:
            raise MalformedAnswer(f"the answer is not JSON: {one_line(str(error))}") from None

    def _charge(self, estimate: float, tokens: int, requests: int) -> None:
        cost = round(tokens * self.price.input / 1_000_000, 6) if self.price else None
        self.costs.charge(estimate, cost)
        self.spend.requests += requests
        self.spend.tokens += tokens
        if cost is not None and self.spend.cost_usd is not None:
            self.spend.cost_usd = round(self.spend.cost_usd + cost, 6)


def _request(server: LlmServer) -> httpx2.Request:
    url = f"{server.options.base_url or 'https://api.openai.com/v1'}/embeddings"
    return httpx2.Request("POST", url)
