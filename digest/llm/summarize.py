"""The digest: one paper's text to a validated Korean ``Digest`` through the LLM.

``DigestConversation`` is the conversation (``digest.llm.conversation``) whose subject is a
paper's text and whose answer is a ``Digest``:

- the question: the system prompt, a worked example, then the paper in ``<paper>`` (in
  ``json_object`` mode the schema goes into the system prompt);
- reading an answer: leniently about raw line breaks inside strings and a Markdown fence
  (small models write them), so that the line checks run and say what to fix;
- judging it: the line checks (the ``Digest`` model), the worked example not repeated, and
  grounding: every number and name must be in the paper. After the last re-ask, numbers the
  paper does not state are taken out where the line still reads (or the paper fails), and
  names are kept and listed, unless there are so many that the digest is of another paper.

How the server is spoken to (formats, parameters, retries) is ``digest.llm.server``'s; the
re-ask protocol, and the interactive transport, ``digest.llm.conversation``'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openai import AsyncOpenAI
from pydantic import BaseModel, Field, ValidationError

from digest.errors import UsageError
from digest.llm.conversation import (
    Answer,
    Conversation,
    Outcome,
    converse,
    prompt_tokens_of,
    unfenced,
)
from digest.llm.evidence import LineEvidence, SentText, check_lines
from digest.llm.grounding import (
    PaperNames,
    copies_example,
    digest_lines,
    dropped_lines,
    find_ungrounded,
    find_ungrounded_names,
    numbers_of_source,
    repair,
    too_many_ungrounded,
)
from digest.llm.prompts import chars_for_tokens, prompt_text, render_prompt
from digest.llm.server import LlmServer, Messages
from digest.models import Digest, Evidence, Extractor, InputKind, Quoted, by_field
from digest.net import AsyncSleep
from digest.options import AnswerFormat, LlmOptions
from digest.validation import describe_validation_error

log = logging.getLogger(__name__)

# "</paper>" as a model might read it: any case, blanks inside.
_PAPER_END = re.compile(r"<\s*/\s*paper\s*>", re.IGNORECASE)
# Tokens of a re-ask beyond the first question: the echoed answer is bounded by the output
# limit, the problems list and the re-ask prompt by this.
_REASK_OVERHEAD_TOKENS = 600
_COPIED_EXAMPLE = (
    "(root): this answer repeats the worked example of the instructions (SpAdapt, Whisper, "
    "LibriSpeech), not the paper; the example only shows the format. Digest the paper inside "
    "<paper>, with its own methods, names and numbers"
)


class PaperText(BaseModel):
    """What the LLM reads about one paper."""

    arxiv_id: str | None
    title: str
    authors: list[str]
    abstract: str = ""  # arXiv's, which names and numbers may also be found in
    identity_score: float | None = None  # how well the PDF's text matched (digest.text.identity)
    input: InputKind
    input_reason: str | None = None
    extractor: Extractor | None = None  # for full text: what read the PDF
    full_text_pending: bool = False  # the abstract only because the PDF host failed for now
    content: str


class Summary(Outcome):
    """A paper's digest, and what it took."""

    digest: Digest
    evidence: Evidence | None = None  # each line's quotes, found in the text sent
    grounding_repairs: list[str] = Field(default_factory=list)
    # names the paper never mentions, kept (see grounding)
    ungrounded_names: list[str] = Field(default_factory=list)


def digest_messages(paper: PaperText, mode: AnswerFormat) -> Messages:
    """System prompt, the worked example, then the paper: what the model is sent in
    ``mode``."""
    kind = "full text (abridged)" if paper.input == "full-text" else "abstract only"
    user = render_prompt(
        "user",
        title=paper.title,
        authors=", ".join(paper.authors) or "unknown",
        arxiv_id=paper.arxiv_id or "none (local PDF)",
        input_kind=kind,
        # A closing tag inside the paper must not end the untrusted block early.
        content=_PAPER_END.sub("</ paper>", paper.content),
    )
    system = render_prompt("system")
    if mode == "json_object":
        schema = json.dumps(Quoted.model_json_schema(), ensure_ascii=False)
        system += "\n" + render_prompt("json-mode", schema=schema)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": prompt_text("example-user.md")},
        {"role": "assistant", "content": prompt_text("example-assistant.json").strip()},
        {"role": "user", "content": user},
    ]


@dataclass(frozen=True)
class Answered:
    """A digest as the model gave it: its lines (checked as a ``Digest``), and each line's
    quotes, not yet looked for in the paper."""

    digest: Digest
    quotes: dict[str, Any]  # in the shape of ``Evidence``

    def lines(self) -> list[LineEvidence]:
        quotes = by_field(self.quotes)
        return [
            LineEvidence(field, line, tuple(quotes.get(field, ())))
            for field, line in digest_lines(self.digest)
        ]


def parse_digest(content: str) -> tuple[Answered | None, list[str]]:
    """The digest in an answer and its quotes, or the problems to send back.

    Lenient where weak models stumble and the fix is certain: raw line breaks and tabs inside
    JSON strings (JSON forbids them; the line checks then say that a line must be one line),
    and a Markdown code fence around the JSON."""
    text = unfenced(content)
    try:
        quoted = Quoted.model_validate_json(text)
    except ValidationError as error:
        if not any(item["type"] == "json_invalid" for item in error.errors()):
            return None, describe_validation_error(error)
        strict_error = error
        try:
            quoted = Quoted.model_validate(json.loads(text, strict=False))
        except ValueError:
            return None, describe_validation_error(strict_error)
    digest_data, quotes = quoted.split()
    try:
        return Answered(Digest.model_validate(digest_data), quotes), []
    except ValidationError as error:
        return None, describe_validation_error(error)


class DigestConversation(Conversation[PaperText, Summary]):
    """One paper's conversation: see the module docstring."""

    schema = Quoted
    noun = "digest"

    def __init__(self, server: LlmServer, paper: PaperText) -> None:
        super().__init__(server, paper)
        self._grounding: tuple[set[Decimal], PaperNames] | None = None
        self._sent: SentText | None = None

    def question(self) -> Messages:
        return digest_messages(self.subject, self.server.mode)

    def read(self, content: str) -> tuple[Answered | None, list[str]]:
        return parse_digest(content)

    def detach(self) -> PaperText:
        # Read again from the paper when it comes back.
        self._grounding = self._sent = None
        return super().detach()

    def judge(self, answer: Answer, last_chance: bool) -> Summary | None:
        answered: Answered | None = answer.parsed
        if answered is not None and copies_example(answered.digest):
            self.mark("copied")
            answer.copied, answer.parsed = True, None
            answer.problems = [_COPIED_EXAMPLE]
            return None
        if answered is None:
            return None
        unsupported = check_lines(answered.lines(), self._sent_text())
        if unsupported:
            if not last_chance:
                self.mark("unsupported")
                answer.problems = [item.problem() for item in unsupported]
                return None
            answers = self.reasks + 1
            raise self.fail(
                f"lines without the paper's words as evidence survived {answers} "
                f"answer{'' if answers == 1 else 's'}: "
                + "; ".join(item.problem() for item in unsupported[:3])
                + (f"; and {len(unsupported) - 3} more" if len(unsupported) > 3 else "")
            )
        evidence = Evidence.model_validate(answered.quotes)
        return self._grounded(answer, answered.digest, evidence, last_chance)

    def _sent_text(self) -> SentText:
        """What of the paper the model was sent (its title and text), read once."""
        if self._sent is None:
            paper = self.subject
            self._sent = SentText(f"{paper.title}\n{paper.content}")
        return self._sent

    def _grounding_of_paper(self) -> tuple[set[Decimal], PaperNames]:
        """The numbers and names the paper states, read once."""
        if self._grounding is None:
            paper = self.subject
            source = f"{paper.title}\n{paper.abstract}\n{paper.content}"
            self._grounding = numbers_of_source(source), PaperNames.of(source)
        return self._grounding

    def _grounded(
        self, answer: Answer, digest: Digest, evidence: Evidence, last_chance: bool
    ) -> Summary | None:
        """The summary when every number and name of ``digest`` is in the paper; else None,
        with the problems on ``answer`` for the re-ask; after the last re-ask, what can be
        mended (see the module docstring)."""
        grounded, names = self._grounding_of_paper()
        ungrounded = find_ungrounded(digest, grounded)
        strangers = find_ungrounded_names(digest, names)
        if not ungrounded and not strangers:
            return self._summary(digest, evidence)
        if not last_chance:
            self.mark("ungrounded")
            answer.problems = [item.problem() for item in ungrounded]
            answer.problems += [item.problem() for item in strangers]
            return None
        answers = self.reasks + 1
        if too_many_ungrounded(digest, strangers):
            listed = ", ".join(dict.fromkeys(item.name for item in strangers))
            raise self.fail(
                f"names the paper never mentions survived {answers} answers: {listed}; "
                "the digest reads as one of another paper"
            )
        notes: list[str] = []
        if ungrounded:
            repaired, notes = repair(digest, ungrounded)
            if repaired is None:
                problems = "; ".join(item.problem() for item in ungrounded)
                raise self.fail(
                    f"numbers the paper does not state survived {answers} answers and could "
                    f"not be taken out and leave a readable line: {problems}"
                )
            log.warning("published without ungrounded numbers: %s", "; ".join(notes))
            digest, evidence = repaired, evidence.without(dropped_lines(notes))
        kept = list(dict.fromkeys(item.name for item in strangers))
        if kept:
            log.warning(
                "published with names the paper does not mention (listed in its provenance): %s",
                ", ".join(kept),
            )
        summary = self._summary(digest, evidence)
        return summary.model_copy(update={"grounding_repairs": notes, "ungrounded_names": kept})

    def _summary(self, digest: Digest, evidence: Evidence) -> Summary:
        return Summary(digest=digest, evidence=evidence, **self.outcome_fields())


class Summarizer:
    """Digests papers through one LLM server (``LlmServer``): what the server refused is
    remembered for the run, so that only the first paper pays for it."""

    def __init__(
        self, options: LlmOptions, client: AsyncOpenAI | None, sleep: AsyncSleep = asyncio.sleep
    ) -> None:
        self.options = options
        self.server = LlmServer(options, client, sleep)

    def begin(self, paper: PaperText) -> DigestConversation:
        """A new conversation about ``paper``, before its first question."""
        return DigestConversation(self.server, paper)

    async def summarize(self, paper: PaperText) -> Summary:
        """The paper's digest; SummaryFailed (with what its answers cost) when there is none."""
        return await converse(self.begin(paper))

    def messages_for(self, paper: PaperText, mode: AnswerFormat | None = None) -> Messages:
        """What the model is sent about ``paper`` first (in ``mode``, by default the one in
        use)."""
        return digest_messages(paper, mode or self.server.mode)

    def fixed_prompt_tokens(self) -> int:
        """The prompt's tokens without the paper, in the larger of the modes it may use."""
        empty = PaperText(arxiv_id=None, title="", authors=[], input="full-text", content="")
        mode = self.server.mode
        modes: set[AnswerFormat] = {mode, "json_object" if self.options.mode == "auto" else mode}
        return max(prompt_tokens_of(self.messages_for(empty, each)) for each in modes)


def fitted_text_budget(options: LlmOptions, fixed_tokens: int) -> int:
    """``text_budget``, made smaller when ``context_tokens`` is set so that the prompt, a re-ask
    (the answer echoed and the problems) and the answer fit the server's context.
    ``fixed_tokens`` is the prompt without the paper."""
    if options.context_tokens is None:
        return options.text_budget
    answer = options.max_output_tokens
    room = options.context_tokens - fixed_tokens - 2 * answer - _REASK_OVERHEAD_TOKENS
    budget = min(options.text_budget, chars_for_tokens(room))
    if budget < 2000:
        raise UsageError(
            f"DIGEST_CONTEXT_TOKENS={options.context_tokens} leaves no room for the paper after "
            f"the instructions (about {fixed_tokens} tokens) and DIGEST_MAX_OUTPUT_TOKENS="
            f"{answer} for the answer and its re-ask; raise the server's context and "
            "DIGEST_CONTEXT_TOKENS, or lower DIGEST_MAX_OUTPUT_TOKENS"
        )
    return budget
