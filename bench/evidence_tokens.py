"""Benchmark: what the evidence (each line's quotes of the paper, since prompt v3) adds to a
digest's output tokens, and how often a first answer's quotes all verify. "Now" below is the
current prompt (``PROMPT_VERSION``); v2 is the last one without quotes.

Three measures:

1. **Gold answers** (always): the five hand-written digests of ``tests/data/digests/``, each
   answered as a careful model would under the current prompt: for a line with numbers, the
   shortest runs of at most 12 words of the paper's extracted text that hold them (two at
   most); for a line without, the run of at most 12 words holding most of its Latin names.
   Output tokens are the project's estimate (``estimate_tokens``: 4 ASCII characters or 1
   Hangul syllable a token) of the answer's JSON before (the digest alone) and after (with
   the quotes); the quotes are checked as digest checks them.
2. **A real model** (``--server URL``, e.g. llama-server with Gemma 3 270M): each PDF given
   is asked once with prompt v2 (the digest alone) and once with the current prompt (each
   line with its quotes), the same text, in json_schema mode as digest sends it; the answers'
   output tokens as the server counted them, and how many lines have quotes found in the
   text sent. ``OPENAI_API_KEY``, when set, is sent as the bearer token.
3. **Answers from anywhere** (``--messages DIR``, then ``--answers DIR``): the first writes,
   for each PDF, the messages digest sends (``text_budget``'s default of the paper) with
   prompt v2 and with the current one (json_object mode: the schema in the prompt, for a
   model or chat that cannot be given one) as ``DIR/<pdf stem>.<version>.messages.json``;
   answer each with any model and save its reply as ``DIR/<pdf stem>.<version>.answer.json``.
   The second reads the replies, for every quoting version answered (v3 on), and prints their
   output tokens (the project's estimate, as for the gold answers), over v2's where v2 was
   answered, the quotes' share of the answer, the lines the digest's own line checks refuse,
   and how many lines have quotes found in the text sent: the figures for a model that cannot
   be served here. ``--tokenizer URL`` counts the tokens with the tokenizer of the model a
   llama-server serves (its ``/tokenize``) instead of the estimate, which takes a Hangul
   syllable for a whole token. ``--publish`` then gives each answer of the current prompt to
   ``digest paper`` as the model's first and only answer (a local server replays it; json_object
   mode, no re-ask) and prints whether digest publishes it, or its reason not to.

    python bench/evidence_tokens.py [--server URL --papers A.pdf B.pdf ...]
    python bench/evidence_tokens.py --messages DIR --papers A.pdf B.pdf ...
    python bench/evidence_tokens.py --answers DIR [--tokenizer URL] [--publish] --papers A.pdf ...
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx2  # noqa: E402
from openai.lib._parsing._completions import type_to_response_format_param  # noqa: E402
from pydantic import BaseModel, ValidationError  # noqa: E402

from digest.llm.evidence import LineEvidence, SentText, check_lines  # noqa: E402
from digest.llm.grounding import digest_lines, numbers_in, value  # noqa: E402
from digest.llm.prompts import PROMPT_VERSION, estimate_tokens, prompt_text, render_prompt  # noqa: E402
from digest.llm.summarize import PaperText, digest_messages  # noqa: E402
from digest.models import Digest, Quoted, by_field  # noqa: E402
from digest.options import AnswerFormat  # noqa: E402
from digest.settings import Settings  # noqa: E402
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
TEXT_BUDGET: int = Settings.model_fields["text_budget"].default  # what digest sends a paper
REAL_TEXT_BUDGET = 2_500  # a small model on a CPU: the real-server tests' text
MAX_TOKENS = 1_600
QUOTE_WORDS = 12  # the longest quote the prompt asks for ("about 6 to 12 words")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]+")


def named_window(line: str, words: list[str]) -> str:
    """A line without numbers: the run of at most ``QUOTE_WORDS`` words of the text that
    holds most of the line's Latin names, from the first of them to the last (6 words at
    least)."""
    names = {w.casefold() for w in _NAME.findall(line)}
    keys = [{w.casefold() for w in _NAME.findall(word)} & names for word in words]
    best: tuple[int, int, int] = (-1, 0, 0)  # (names held, -length, start)
    for first in range(len(words) - 6):
        if not keys[first]:
            continue
        held: set[str] = set()
        for last in range(first, min(first + QUOTE_WORDS, len(words))):
            held |= keys[last]
            size = max(last - first + 1, 6)
            best = max(best, (len(held), -size, first))
    _, size, first = best
    return " ".join(words[first : first + max(-size, 6)])


def quotes_for(line: str, words: list[str]) -> list[str]:
    """What a careful model quotes for ``line`` under the current prompt: runs of at most
    ``QUOTE_WORDS`` words of the text that hold the line's numbers, the fewest (two at most);
    a line without numbers, the run that holds most of its names."""
    wanted = {value(number) for number in numbers_in(line)}
    if not wanted:
        return [named_window(line, words)]
    held = [{value(n) for n in numbers_in(word)} for word in words]
    quotes: list[str] = []
    while wanted and len(quotes) < 2:
        best: tuple[int, int, int] | None = None  # (numbers held, -length, start)
        for start in range(len(words)):
            if not held[start] & wanted:
                continue
            covered: set[object] = set()
            for end in range(start, min(start + QUOTE_WORDS, len(words))):
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


def with_quotes(quotes: dict[str, list[str]], field: str, line: str) -> dict[str, Any]:
    """A line of the answer as the prompt asks for it: its text and its quotes."""
    return {"text": line, "quotes": quotes[field]}


def gold() -> None:
    print("gold answers (estimated output tokens; one quote a line, two where its numbers need)")
    print(f"{'paper':12} {'before':>7} {'after':>7} {'increase':>9} {'lines':>6} {'verified':>9}")
    increases, verified_all = [], 0
    for arxiv_id, pdf in GOLD.items():
        digest = Digest.model_validate_json((DIGESTS / f"{arxiv_id}.json").read_text("utf-8"))
        text = extract_pdf((PDFS / pdf).read_bytes(), TEXT_BUDGET).text
        words = text.split()
        before = json.dumps(digest.model_dump(), ensure_ascii=False)
        quotes = {field: quotes_for(line, words) for field, line in digest_lines(digest)}
        lines = [LineEvidence(field, line, tuple(quotes[field]))
                 for field, line in digest_lines(digest)]  # fmt: skip
        quoted = reshaped(digest.model_dump(), partial(with_quotes, quotes))
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
    key = os.environ.get("OPENAI_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer: dict[str, Any] = httpx2.post(
        f"{server.rstrip('/')}/chat/completions", json=body, headers=headers, timeout=1800
    ).json()
    return answer


def real(server: str, papers: list[Path]) -> None:
    """Each paper asked once with prompt v2 (the digest alone) and once with the current one
    (each line with its quotes), the same text and server; the answer's output tokens as the
    server counted them, and whether the quotes verify."""
    print(f"\nreal model at {server}: one answer a prompt version, {MAX_TOKENS} tokens at most")
    now = PROMPT_VERSION
    print(f"{'paper':16} {'v2 out':>7} {now + ' out':>7} {'increase':>9}  quotes verified ({now})")
    increases, refused = [], []
    for pdf in papers:
        paper = paper_of(pdf, REAL_TEXT_BUDGET)
        counted = {}
        for version, schema in (("v2", Digest), (now, Quoted)):
            answer = ask(server, messages_of(paper, version, "json_schema"), schema)
            choice = answer["choices"][0]
            counted[version] = (answer["usage"]["completion_tokens"], choice)
        (before, _), (after, choice) = counted["v2"], counted[now]
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


@cache  # each prompt version's answers are checked against the same text
def paper_of(pdf: Path, budget: int) -> PaperText:
    """What digest sends of a local PDF: its extracted title and first ``budget`` characters."""
    extracted = extract_pdf(pdf.read_bytes(), budget)
    return PaperText(
        arxiv_id=None, title=extracted.title or pdf.stem, authors=[], input="full-text",
        content=extracted.text,
    )  # fmt: skip


def messages_of(paper: PaperText, version: str, mode: AnswerFormat) -> list[dict[str, str]]:
    """What digest sends for ``paper`` with prompt ``version`` (v2: before the quotes) in
    ``mode``."""
    if version == PROMPT_VERSION:
        return digest_messages(paper, mode)
    user = render_prompt(
        "user", version, title=paper.title, authors="unknown", arxiv_id="none (local PDF)",
        input_kind="full text (abridged)", content=paper.content,
    )  # fmt: skip
    system = render_prompt("system", version)
    if mode == "json_object":
        schema = json.dumps(Digest.model_json_schema(), ensure_ascii=False)
        system += "\n" + render_prompt("json-mode", version, schema=schema)
    return [
        {"role": "system", "content": system},
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


def write_messages(folder: Path, papers: list[Path]) -> None:
    """Each paper's messages with prompt v2 and the current one, for a model this script
    cannot serve."""
    folder.mkdir(parents=True, exist_ok=True)
    for pdf in papers:
        paper = paper_of(pdf, TEXT_BUDGET)
        for version in ("v2", PROMPT_VERSION):
            messages = messages_of(paper, version, "json_object")
            path = folder / f"{pdf.stem}.{version}.messages.json"
            path.write_text(json.dumps(messages, ensure_ascii=False, indent=1), "utf-8")
            print(f"{path}: {sum(estimate_tokens(m['content']) for m in messages):,} tokens in")


Count = Callable[[str], int]


def tokenizer(server: str) -> Count:
    """Counting with the tokenizer of the model a llama-server serves (its /tokenize)."""

    def count(text: str) -> int:
        reply = httpx2.post(f"{server.rstrip('/')}/tokenize", json={"content": text}, timeout=60)
        tokens: list[int] = reply.raise_for_status().json()["tokens"]
        return len(tokens)

    return count


def answer_tokens(data: Any, count: Count = estimate_tokens) -> int:
    """An answer's output tokens (by the project's estimate unless ``count`` is given), its
    JSON written as the gold answers' are (so a model's spacing does not count)."""
    return count(json.dumps(data, ensure_ascii=False))


def reshaped(data: dict[str, Any], line_of: Callable[[str, Any], Any]) -> dict[str, Any]:
    """``data`` in the digest's shape, each line replaced by ``line_of(field, line)`` (the
    field named as ``models.by_field`` names it)."""
    intro = data["introduction"]
    shaped: dict[str, Any] = {
        "introduction": {
            name: line_of(f"introduction.{name}", line) for name, line in intro.items()
        }
    }
    for section in ("method", "results", "limitations", "conclusion"):
        shaped[section] = [line_of(f"{section}[{index}]", line)
                           for index, line in enumerate(data[section])]  # fmt: skip
    return shaped


def quoted_lines(answer: dict[str, Any]) -> tuple[dict[str, Any], list[LineEvidence]]:
    """A quoting answer's lines alone (in the digest's shape) and each line with its quotes, read
    as they are: a line the digest's own checks would refuse is still measured."""
    alone = reshaped(answer, lambda _, line: line["text"])
    lines = [LineEvidence(field, line["text"], tuple(line["quotes"]))
             for field, line in by_field(answer).items()]  # fmt: skip
    return alone, lines


def refused_lines(data: dict[str, Any]) -> int:
    """How many of a digest's lines its own checks (Korean, endings, length) refuse."""
    try:
        Digest.model_validate(data)
    except ValidationError as error:
        return len({tuple(problem["loc"]) for problem in error.errors()})
    return 0


def answers(folder: Path, papers: list[Path], count: Count) -> None:
    """The replies saved beside ``write_messages``' files, for each quoting prompt version
    answered (v3 on): its output tokens over v2's where v2 was answered too, its quotes'
    share of its own answer, and how many of its lines have quotes found in the text sent."""
    counted = "estimated" if count is estimate_tokens else "counted"
    print(f"answers in {folder} ({counted} output tokens; lines the digest's checks refuse)")
    print(f"{'paper':22} {'v2':>6} {'quoted':>6} {'/v2':>7} {'quotes':>7} {'refused':>8}  "
          "lines whose quotes verify")  # fmt: skip
    versions = sorted({path.name.split(".")[-3] for path in folder.glob("*.answer.json")} - {"v2"})
    for version in versions:
        increases, shares, whole, answered, refused = [], [], 0, 0, []
        for pdf in papers:
            quoted_path = folder / f"{pdf.stem}.{version}.answer.json"
            if not quoted_path.exists():
                continue
            answered += 1
            paper = paper_of(pdf, TEXT_BUDGET)
            answer = json.loads(quoted_path.read_text("utf-8"))
            alone, lines = quoted_lines(answer)
            after = answer_tokens(answer, count)
            shares.append(after / answer_tokens(alone, count) - 1)
            problems = check_lines(lines, SentText(f"{paper.title}\n{paper.content}"))
            bad = {problem.field for problem in problems}
            whole += not problems
            refused += [problem.problem() for problem in problems]
            before, over, refused_before = "-", "-", "-"
            v2_path = folder / f"{pdf.stem}.v2.answer.json"
            if v2_path.exists():
                v2 = json.loads(v2_path.read_text("utf-8"))
                before_tokens = answer_tokens(v2, count)
                increases.append(after / before_tokens - 1)
                before, over = str(before_tokens), f"{increases[-1]:.1%}"
                refused_before = str(refused_lines(v2))
            print(
                f"{pdf.stem + ' ' + version:22} {before:>6} {after:6} {over:>7} "
                f"{shares[-1]:7.1%} {refused_before:>3}, {refused_lines(alone):>2}  "
                f"{len(lines) - len(bad)} of {len(lines)}"
            )
        over_v2 = f"{statistics.mean(increases):.1%} over v2, " if increases else ""
        print(
            f"{version}: {over_v2}the quotes {statistics.mean(shares):.1%} of its lines alone; "
            f"first answers whose quotes all verify: {whole} of {answered}"
        )
        for problem in refused:
            print(f"  refused: {problem[:300]}")


class _Replay(http.server.BaseHTTPRequestHandler):
    """A chat completions endpoint that answers every request with one saved answer."""

    answer = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        sent = sum(estimate_tokens(message["content"]) for message in request["messages"])
        body = json.dumps({
            "id": "replay", "object": "chat.completion", "created": 0, "model": request["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": self.answer}}],
            "usage": {"prompt_tokens": sent, "completion_tokens": estimate_tokens(self.answer),
                      "total_tokens": sent + estimate_tokens(self.answer)},
        }).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def publish(folder: Path, papers: list[Path]) -> None:
    """Each saved answer of the current prompt given to ``digest paper`` as the model's first
    and only answer (json_object mode, no re-ask): whether digest publishes it, or why not."""
    print(f"\n{PROMPT_VERSION} answers through digest paper, as the first answer, no re-ask")
    published = 0
    for pdf in papers:
        _Replay.answer = (folder / f"{pdf.stem}.{PROMPT_VERSION}.answer.json").read_text("utf-8")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Replay)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with tempfile.TemporaryDirectory() as cache:
            environment = {key: value for key, value in os.environ.items()
                           if not key.startswith(("DIGEST_", "OPENAI_"))}  # fmt: skip
            environment |= {
                "OPENAI_BASE_URL": f"http://127.0.0.1:{server.server_port}/v1",
                "OPENAI_API_KEY": "sk-replay", "DIGEST_LLM_MODE": "json_object",
                "DIGEST_MAX_REASKS": "0", "DIGEST_CACHE_DIR": cache,
            }  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-m", "digest", "paper", str(pdf), "--json"],
                env=environment, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
        server.shutdown()
        published += done.returncode == 0
        why = "published" if done.returncode == 0 else done.stderr.strip().splitlines()[-1]
        print(f"{pdf.stem:22} {why[:220]}")
    print(f"published at the first answer: {published} of {len(papers)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="an OpenAI-compatible server's base URL (…/v1)")
    parser.add_argument("--papers", nargs="*", type=Path, default=[])
    parser.add_argument("--messages", type=Path, metavar="DIR", help="write what to answer")
    parser.add_argument("--answers", type=Path, metavar="DIR", help="read the answers")
    parser.add_argument(
        "--tokenizer", metavar="URL", help="count --answers' tokens with a llama-server's model"
    )
    parser.add_argument(
        "--publish", action="store_true", help="give each answer to digest paper, no re-ask"
    )
    options = parser.parse_args()
    if options.messages:
        write_messages(options.messages, options.papers)
        return
    if options.answers:
        count = tokenizer(options.tokenizer) if options.tokenizer else estimate_tokens
        answers(options.answers, options.papers, count)
        if options.publish:
            publish(options.answers, options.papers)
        return
    gold()
    if options.server:
        real(options.server, options.papers)


if __name__ == "__main__":
    main()
