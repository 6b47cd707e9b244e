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
2. **A real model** (``--server URL``, e.g. llama-server with Gemma 3 270M): ``digest paper``
   on held-out papers, once with the code before the quotes (``--before REV``, checked out in
   a temporary worktree) and once with this checkout, no re-ask; the first answer's output
   tokens as the server counted them, and whether the paper passed, or why it failed.

    python bench/evidence_tokens.py [--server URL --before REV --papers A.pdf B.pdf ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.llm.evidence import LineEvidence, SentText, check_lines, normalize  # noqa: E402
from digest.llm.grounding import digest_lines, numbers_in, value  # noqa: E402
from digest.llm.prompts import estimate_tokens  # noqa: E402
from digest.models import Digest  # noqa: E402
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
ANSWER_LOG = re.compile(r"answer (\d+) \((?:json_schema|json_object)\): (\d+) tokens in, (\d+) out")
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
        count, size, start = best
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


def run_digest(checkout: Path, server: str, pdf: Path, home: Path) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "OPENAI_"))}
    environment |= {
        "OPENAI_BASE_URL": server,
        "OPENAI_API_KEY": "sk-local",
        "DIGEST_MODEL": "gpt-4.1-mini",
        "DIGEST_TEXT_BUDGET": "2500",
        "DIGEST_MAX_OUTPUT_TOKENS": "1400",
        "DIGEST_MAX_REASKS": "0",
        "DIGEST_CONTEXT_TOKENS": "8192",
        "DIGEST_LLM_TIMEOUT": "600",
        "DIGEST_CACHE_DIR": str(home / "cache"),
        "PYTHONPATH": str(checkout),
    }
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--verbose", "paper", str(pdf), "--json"],
        env=environment, capture_output=True, text=True, timeout=1800, cwd=home,
    )  # fmt: skip
    answers = ANSWER_LOG.findall(done.stderr)
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    return {
        "exit": done.returncode,
        "tokens_out": int(answers[0][2]) if answers else None,
        "why": "" if done.returncode == 0 else last,
    }


def real(server: str, before: str, papers: list[Path]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        old = Path(scratch) / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), before],
                       check=True, capture_output=True)  # fmt: skip
        try:
            print(f"\nreal model at {server}: first answer's output tokens (no re-ask)")
            rows = []
            for pdf in papers:
                for name, checkout in (("before", old), ("after", REPO)):
                    home = Path(scratch) / f"{pdf.stem}-{name}"
                    home.mkdir()
                    result = run_digest(checkout, server, pdf, home)
                    rows.append((pdf.stem, name, result))
                    print(f"{pdf.stem:16} {name:7} exit {result['exit']} "
                          f"tokens_out {result['tokens_out']}  {str(result['why'])[:300]}")  # fmt: skip
            pairs = {}
            for stem, name, result in rows:
                pairs.setdefault(stem, {})[name] = result["tokens_out"]
            ratios = [p["after"] / p["before"] - 1 for p in pairs.values()
                      if p.get("before") and p.get("after")]  # fmt: skip
            if ratios:
                print(f"mean increase {statistics.mean(ratios):.1%} over {len(ratios)} papers")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)],
                           capture_output=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="an OpenAI-compatible server's base URL (…/v1)")
    parser.add_argument("--before", default="4dfee51", help="the revision before the quotes")
    parser.add_argument("--papers", nargs="*", type=Path, default=[])
    options = parser.parse_args()
    gold()
    if options.server:
        real(options.server, options.before, options.papers)


if __name__ == "__main__":
    assert normalize("x") == "x"
    main()
