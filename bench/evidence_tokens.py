"""Benchmark: what the evidence (each line's quotes of the paper, prompt v3) adds to a digest's
output tokens, and how often a first answer's quotes all verify.

Two measures:

1. **Gold answers** (always): the five hand-written digests of ``tests/data/digests/``, each
   answered as a careful model would under prompt v3: one quote a line, the shortest sentence
   of the paper's extracted text (6 to 25 words) that holds every number of the line (else
   the one that shares most of its names, else its first such sentence). Output tokens are
   the project's estimate (``estimate_tokens``: 4 ASCII characters or 1 Hangul syllable a
   token) of the answer's JSON before (the digest alone) and after (with the quotes); the
   quotes are checked as digest checks them.
2. **A real model** (``--server URL``, e.g. llama-server with Gemma 3 270M): each PDF given
   is asked once with prompt v2 (the digest alone) and once with v3 (each line with its
   quotes), the same text, in json_schema mode as digest sends it; the answers' output tokens
   as the server counted them, and how many of v3's lines have quotes found in the text sent.

    python bench/evidence_tokens.py [--server URL --papers A.pdf B.pdf ...]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx2  # noqa: E402
from openai.lib._parsing._completions import type_to_response_format_param  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from digest.llm.evidence import LineEvidence, SentText, check_lines  # noqa: E402
from digest.llm.grounding import digest_lines, numbers_in, value  # noqa: E402
from digest.llm.prompts import PROMPT_VERSION, estimate_tokens, prompt_text, render_prompt  # noqa: E402
from digest.llm.summarize import PaperText, digest_messages  # noqa: E402
from digest.models import Digest, Quoted, by_field  # noqa: E402
from digest.text.extract import extract_pdf  # noqa: E402

DIGESTS = REPO / "tests" / "data" / "digests"
PDFS = REPO / "tests" / "data" / "pdfs"
GOLD = {
    "0908.0054": "0908.0054v1.pdf",
    "2004.04906": "2004.04906v3.pdf",
    "2203.00274": "2203.00274v2.pdf",
    "1906.08632": "1906.08632v2-pp1-11.pdf",
    "2501.12948": "2501.12948v1.pdf",
}
TEXT_BUDGET = 30_000  # characters of the paper sent, as the default text_budget about
REAL_TEXT_BUDGET = 2_500  # a small model on a CPU: the real-server tests' text
MAX_TOKENS = 1_600
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """The text's sentences of 6 to 25 words, as a model would quote them."""
    found = []
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        if 6 <= len(sentence.split()) <= 25:
            found.append(sentence)
    return found


def quotes_for(line: str, text: str, candidates: list[str]) -> list[str]:
    """What a careful model quotes for ``line``: runs of at most 25 words of the text that
    hold the line's numbers, the fewest (two at most); a line without numbers, the sentence
    that shares most of its names, the shortest of those."""
    wanted = {value(number) for number in numbers_in(line)}
    if not wanted:
        names = {w.casefold() for w in re.findall(r"[A-Za-z][A-Za-z0-9-]+", line)}

        def shared(sentence: str) -> int:
            found = re.findall(r"[A-Za-z][A-Za-z0-9-]+", sentence)
            return len(names & {w.casefold() for w in found})

        return [max(candidates, key=lambda s: (shared(s), -len(s.split())))]
    words = text.split()
    held = [{value(n) for n in numbers_in(word)} for word in words]
    quotes: list[str] = []
    while wanted and len(quotes) < 2:
        best: tuple[int, int, int] | None = None  # (numbers held, -length, start)
        for start in range(len(words)):
            if not held[start] & wanted:
                continue
            covered: set[object] = set()
            for end in range(start, min(start + 25, len(words))):
                covered |= held[end] & wanted
                size = max(end - start + 1, 6)
                if best is None or (len(covered), -size) > best[:2]:
                    best = (len(covered), -size, start)
        if best is None:
            break
        _, size, start = best
        window = words[start : start + max(-size, 6)]
        quotes.append(" ".join(window))
        wanted -= {value(n) for n in numbers_in(" ".join(window))}
    return quotes


def gold() -> None:
    print("gold answers (estimated output tokens; one quote a line, two where its numbers need)")
    print(f"{'paper':12} {'before':>7} {'after':>7} {'increase':>9} {'lines':>6} {'verified':>9}")
    increases, verified_all = [], 0
    for arxiv_id, pdf in GOLD.items():
        digest = Digest.model_validate_json((DIGESTS / f"{arxiv_id}.json").read_text("utf-8"))
        text = extract_pdf((PDFS / pdf).read_bytes(), TEXT_BUDGET).text
        candidates = sentences(text)
        before = json.dumps(digest.model_dump(), ensure_ascii=False)
        quoted = digest.model_dump()
        lines = []
        for field, line in digest_lines(digest):
            quotes = quotes_for(line, text, candidates)
            lines.append(LineEvidence(field, line, tuple(quotes)))
            item = {"text": line, "quotes": quotes}
            if field.startswith("introduction."):
                quoted["introduction"][field.split(".")[1]] = item
            else:
                section, index = field[:-1].split("[")
                quoted[section][int(index)] = item
        after = json.dumps(quoted, ensure_ascii=False)
        problems = check_lines(lines, SentText(text))
        verified = len(lines) - len({p.field for p in problems})
        verified_all += not problems
        tokens_before, tokens_after = estimate_tokens(before), estimate_tokens(after)
        increase = tokens_after / tokens_before - 1
        increases.append(increase)
        print(
            f"{arxiv_id:12} {tokens_before:7} {tokens_after:7} {increase:9.1%} {len(lines):6} "
            f"{verified:>5}/{len(lines)}"
        )
        for problem in problems:
            print(f"    {problem.problem()[:150]}")
    print(f"mean increase {statistics.mean(increases):.1%}; first answers whose quotes all "
          f"verify: {verified_all} of {len(GOLD)}")  # fmt: skip


def ask(server: str, messages: list[dict[str, str]], schema: type[BaseModel]) -> dict[str, Any]:
    """One chat completion from ``server`` in json_schema mode, as digest sends it."""
    body = {
        "model": "gpt-4.1-mini",
        "messages": messages,
        "response_format": type_to_response_format_param(schema),
        "max_tokens": MAX_TOKENS,
        "temperature": 0.2,
    }
    answer: dict[str, Any] = httpx2.post(
        f"{server.rstrip('/')}/chat/completions", json=body, timeout=1800
    ).json()
    return answer


def real(server: str, papers: list[Path]) -> None:
    """Each paper asked once with prompt v2 (the digest alone) and once with v3 (each line
    with its quotes), the same text and server; the answer's output tokens as the server
    counted them, and whether v3's quotes verify."""
    print(f"\nreal model at {server}: one answer a prompt version, {MAX_TOKENS} tokens at most")
    print(f"{'paper':16} {'v2 out':>7} {'v3 out':>7} {'increase':>9}  quotes verified (v3)")
    increases, refused = [], []
    for pdf in papers:
        extracted = extract_pdf(pdf.read_bytes(), REAL_TEXT_BUDGET)
        paper = PaperText(
            arxiv_id=None, title=extracted.title or pdf.stem, authors=[], input="full-text",
            content=extracted.text,
        )  # fmt: skip
        counted = {}
        for version, schema in (("v2", Digest), ("v3", Quoted)):
            answer = ask(server, messages_of(paper, version), schema)
            choice = answer["choices"][0]
            counted[version] = (answer["usage"]["completion_tokens"], choice)
        (before, _), (after, choice) = counted["v2"], counted["v3"]
        verdict = "cut off" if choice.get("finish_reason") == "length" else ""
        if not verdict:
            verdict, problems = verified(choice["message"]["content"], paper)
            refused += problems
        increase = after / before - 1
        increases.append(increase)
        print(f"{pdf.stem:16} {before:7} {after:7} {increase:9.1%}  {verdict}")
    print(f"mean increase {statistics.mean(increases):.1%} over {len(papers)} papers")
    for problem in refused[:6]:
        print(f"  refused: {problem[:240]}")


def messages_of(paper: PaperText, version: str) -> list[dict[str, str]]:
    """What digest sends for ``paper`` with prompt ``version`` (v2: before the quotes)."""
    if version == PROMPT_VERSION:
        return digest_messages(paper, "json_schema")
    user = render_prompt(
        "user", version, title=paper.title, authors="unknown", arxiv_id="none (local PDF)",
        input_kind="full text (abridged)", content=paper.content,
    )  # fmt: skip
    return [
        {"role": "system", "content": render_prompt("system", version)},
        {"role": "user", "content": prompt_text("example-user.md", version)},
        {"role": "assistant", "content": prompt_text("example-assistant.json", version).strip()},
        {"role": "user", "content": user},
    ]


def verified(content: str, paper: PaperText) -> tuple[str, list[str]]:
    """How many of the answer's lines have quotes found in the text sent, and the problems."""
    try:
        quoted = Quoted.model_validate_json(content)
    except ValueError as error:
        return f"not the schema ({str(error).splitlines()[0]})", []
    digest_data, evidence = quoted.split()
    texts, quotes = by_field(digest_data), by_field(evidence)
    lines = [LineEvidence(field, texts[field], tuple(quotes[field])) for field in texts]
    problems = check_lines(lines, SentText(f"{paper.title}\n{paper.content}"))
    bad = {problem.field for problem in problems}
    return f"{len(lines) - len(bad)} of {len(lines)} lines", [p.problem() for p in problems]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="an OpenAI-compatible server's base URL (…/v1)")
    parser.add_argument("--papers", nargs="*", type=Path, default=[])
    options = parser.parse_args()
    gold()
    if options.server:
        real(options.server, options.papers)


if __name__ == "__main__":
    main()
