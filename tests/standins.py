"""Local stand-ins for the services digest talks to, as real HTTP servers on 127.0.0.1.

One threaded server answers three kinds of request, so the real ``openai``, ``arxiv`` and
``httpx2`` clients run over real sockets:

- ``POST /v1/chat/completions``: an OpenAI-compatible API. It answers from ``llm_script``
  (one scripted reply per request, then ``llm_default``) and records every request body.
- ``GET /api/query``: the arXiv API, answering Atom like the real one for ``papers``.
- ``GET /pdf/<id>``: the PDF host, serving ``pdfs`` (ID with version → bytes).
- ``GET /hf/daily_papers``: Hugging Face's Daily Papers API, paging ``hf_days`` (date → items).

``faults`` injects a status for the next requests of a kind (``"arxiv"`` or ``"pdf"``); the
status ``STALL`` instead holds the request for ``stall_seconds`` before answering normally.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

Reply = tuple[int, dict[str, str], bytes]
STALL = 0
# In a scripted completion's usage: "count the request's prompt", as a real server does.
COUNT_PROMPT = -1


def prompt_tokens(request: dict[str, Any]) -> int:
    """What a real tokenizer reports for a request, near enough: a token per 4 UTF-8 bytes
    (about 4 characters of English, 1.3 Hangul syllables), plus a few per message."""
    messages = request.get("messages") or []
    size = sum(len(str(m.get("content") or "").encode()) for m in messages)
    return -(-size // 4) + 4 * len(messages)


@dataclass
class ArxivPaper:
    arxiv_id: str
    version: int
    title: str
    authors: list[str]
    abstract: str
    comment: str = ""
    # Overrides for malformed entries, as the real feed has served them.
    entry_id: str | None = None  # the <id> text; default http://arxiv.org/abs/IDvN
    published: str = "2025-12-14T10:00:00Z"


def completion(
    content: str | None,
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    usage: dict[str, Any] | None = None,
) -> Reply:
    """A chat completion in the OpenAI wire format."""
    body = {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "standin-model",
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
            }
        ],
        "usage": usage
        or {
            "prompt_tokens": COUNT_PROMPT,
            "completion_tokens": 200,
            "total_tokens": COUNT_PROMPT,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    }
    return 200, {"content-type": "application/json"}, json.dumps(body).encode()


def json_reply(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> Reply:
    return (
        status,
        {"content-type": "application/json", **(headers or {})},
        json.dumps(payload).encode(),
    )


def error_reply(
    status: int, message: str, headers: dict[str, str] | None = None, **fields: Any
) -> Reply:
    """An OpenAI-style error body; ``fields`` adds ``param``, ``code`` or ``type``."""
    error = {"message": message, "type": "standin", "code": None, **fields}
    return json_reply(status, {"error": error}, headers)


def arxiv_error_feed(message: str) -> bytes:
    """arXiv's answer to a query it cannot parse (HTTP 400), as its API sends it: a feed whose
    one entry, titled Error, says what is wrong (recorded in arxiv.py's test fixtures)."""
    anchor = message.replace(" ", "_")
    return f"""<?xml version='1.0' encoding='UTF-8'?>
<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">
  <id>https://arxiv.org/</id>
  <title>arXiv Search Results</title>
  <updated>2026-04-12T22:59:06Z</updated>
  <opensearch:itemsPerPage>1</opensearch:itemsPerPage>
  <opensearch:totalResults>1</opensearch:totalResults>
  <opensearch:startIndex>0</opensearch:startIndex>
  <entry>
    <id>https://arxiv.org/api/errors#{escape(anchor)}</id>
    <title>Error</title>
    <updated>2026-04-12T22:59:06Z</updated>
    <link href="https://arxiv.org/api/errors#{escape(anchor)}" rel="alternate" type="text/html"/>
    <summary>{escape(message)}</summary>
    <author>
      <name>arXiv api core</name>
    </author>
  </entry>
</feed>
""".encode()


# arXiv's own check of a new-style ID: YYMM with a month of 01 to 12.
_ARXIV_ACCEPTS = re.compile(r"(\d{2}(0[1-9]|1[0-2])\.\d{4,5}|[a-z-]+(\.[A-Z]{2})?/\d{7})(v\d+)?")

# What arXiv answers a client over its rate: a bare 429, no Retry-After.
ARXIV_429: Reply = (429, {"content-type": "text/plain"}, b"Rate exceeded.")
# A proxy's maintenance page, served with status 200.
HTML_PAGE: Reply = (
    200,
    {"content-type": "text/html"},
    b"<!DOCTYPE html><html><body>Down for maintenance</body></html>",
)


def atom_feed(papers: list[ArxivPaper], total: int | None = None) -> bytes:
    entries = []
    for paper in papers:
        authors = "".join(f"<author><name>{escape(name)}</name></author>" for name in paper.authors)
        comment = f"<arxiv:comment>{escape(paper.comment)}</arxiv:comment>" if paper.comment else ""
        versioned = f"{paper.arxiv_id}v{paper.version}"
        entry_id = paper.entry_id or f"http://arxiv.org/abs/{versioned}"
        entries.append(
            f"""<entry>
    <id>{escape(entry_id)}</id>
    <updated>2025-12-15T10:00:00Z</updated>
    <published>{escape(paper.published)}</published>
    <title>{escape(paper.title)}</title>
    <summary>  {escape(paper.abstract)}
</summary>
    {authors}{comment}
    <link href="http://arxiv.org/abs/{versioned}" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/{versioned}" rel="related" type="application/pdf"/>
    <arxiv:primary_category term="cs.LG"/>
    <category term="cs.LG"/>
  </entry>"""
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"
      xmlns:arxiv="http://arxiv.org/schemas/atom">
  <title>arXiv Query</title>
  <id>https://arxiv.org/api/standin</id>
  <updated>2025-12-16T00:00:00Z</updated>
  <opensearch:totalResults>{len(papers) if total is None else total}</opensearch:totalResults>
  <opensearch:startIndex>0</opensearch:startIndex>
  <opensearch:itemsPerPage>{len(papers)}</opensearch:itemsPerPage>
  {"".join(entries)}
</feed>
""".encode()


@dataclass
class StandIn:
    """The server's state; tests read its records and change its behaviour."""

    papers: dict[str, ArxivPaper] = field(default_factory=dict)
    pdfs: dict[str, bytes] = field(default_factory=dict)
    llm_script: list[Reply | Callable[[dict[str, Any]], Reply]] = field(default_factory=list)
    llm_default: Callable[[dict[str, Any]], Reply] | None = None
    # Per kind ("arxiv", "pdf"): a status (with a plain-text body), STALL, or a whole Reply.
    faults: dict[str, list[int | Reply]] = field(default_factory=dict)
    llm_requests: list[dict[str, Any]] = field(default_factory=list)
    llm_headers: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)  # reported, answer by answer
    arxiv_requests: list[dict[str, list[str]]] = field(default_factory=list)
    arxiv_times: list[float] = field(default_factory=list)  # ``clock()`` at each request
    # As the real API has done: totalResults counts every ID asked for, found or not.
    arxiv_counts_unknown_ids: bool = False
    search_results: list[ArxivPaper] = field(default_factory=list)
    hf_days: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    hf_requests: list[dict[str, str]] = field(default_factory=list)
    hf_replies: list[Reply] = field(default_factory=list)
    pdf_requests: list[str] = field(default_factory=list)
    pdf_replies: list[Reply] = field(default_factory=list)  # scripted, before ``pdfs``
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    stall_seconds: float = 1.5
    clock: Callable[[], float] = time.monotonic  # a test's FakeClock, where it measures waits
    # Per kind ("llm", "arxiv", "pdf", "hf"): seconds between the bytes of every answer.
    trickle: dict[str, float] = field(default_factory=dict)

    def answer(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        parsed = urlparse(path)
        if method == "POST" and parsed.path.endswith("/chat/completions"):
            request = json.loads(body)
            with self.lock:
                self.llm_requests.append(request)
                self.llm_headers.append(headers)
                step = self.llm_script.pop(0) if self.llm_script else self.llm_default
            if step is None:
                return error_reply(500, "stand-in has no scripted answer")
            return self._count_prompt(request, step(request) if callable(step) else step)
        if method == "GET" and parsed.path == "/api/query":
            query = parse_qs(parsed.query)
            with self.lock:
                self.arxiv_requests.append(query)
                self.arxiv_times.append(self.clock())
            fault = self._fault("arxiv")
            if fault:
                return fault if isinstance(fault, tuple) else self._plain(fault, b"arXiv is down")
            if query.get("search_query", [""])[0]:
                return 200, {"content-type": "application/atom+xml"}, atom_feed(self.search_results)
            wanted = query.get("id_list", [""])[0].split(",")
            for item in wanted:
                if not _ARXIV_ACCEPTS.fullmatch(item):
                    feed = arxiv_error_feed(f"incorrect id format for {item}")
                    return 400, {"content-type": "application/atom+xml"}, feed
            found = []
            for item in wanted:
                arxiv_id = item.rsplit("v", 1)[0] if "v" in item.split("/")[-1] else item
                if arxiv_id in self.papers:
                    found.append(self.papers[arxiv_id])
            total = len(wanted) if self.arxiv_counts_unknown_ids else len(found)
            start = int(query.get("start", ["0"])[0])
            return 200, {"content-type": "application/atom+xml"}, atom_feed(found[start:], total)
        if method == "GET" and parsed.path.startswith("/pdf/"):
            name = parsed.path.removeprefix("/pdf/")
            with self.lock:
                self.pdf_requests.append(name)
            fault = self._fault("pdf")
            if fault:
                return fault if isinstance(fault, tuple) else self._plain(fault, b"PDF host error")
            with self.lock:
                scripted = self.pdf_replies.pop(0) if self.pdf_replies else None
            if scripted:
                return scripted
            if name not in self.pdfs:
                return 404, {"content-type": "text/plain"}, b"not found"
            return 200, {"content-type": "application/pdf"}, self.pdfs[name]
        if method == "GET" and parsed.path == "/hf/daily_papers":
            params = {key: values[0] for key, values in parse_qs(parsed.query).items()}
            with self.lock:
                self.hf_requests.append(params)
                scripted = self.hf_replies.pop(0) if self.hf_replies else None
            if scripted:
                return scripted
            date = params.get("date", "")
            if date > dt.datetime.now(dt.UTC).date().isoformat():
                # The Hub's answer to a day that has not begun in UTC: 400, not an empty list.
                return json_reply(400, {"error": f"Invalid date: {date} is in the future"})
            items = self.hf_days.get(date, [])
            page, limit = int(params.get("p", "0")), int(params.get("limit", "50"))
            return json_reply(200, items[page * limit : (page + 1) * limit])
        return 404, {"content-type": "text/plain"}, b"unknown path"

    def trickle_for(self, path: str) -> float:
        """Seconds between the bytes of an answer to ``path`` (0: all at once)."""
        kind = (
            "llm" if "/chat/completions" in path else "arxiv" if path.startswith("/api/query")
            else "pdf" if path.startswith("/pdf/") else "hf" if path.startswith("/hf/") else ""
        )  # fmt: skip
        return self.trickle.get(kind, 0.0)

    def _count_prompt(self, request: dict[str, Any], reply: Reply) -> Reply:
        """Fill in ``COUNT_PROMPT`` with the request's prompt tokens, and record them; answer
        as the model asked for."""
        status, headers, payload = reply
        try:
            body = json.loads(payload)
        except ValueError:
            return reply
        if not isinstance(body, dict):
            return reply
        if body.get("model") == "standin-model":  # like OpenAI: the model asked for answers
            body["model"] = request.get("model", "standin-model")
        usage = body.get("usage")
        if not isinstance(usage, dict) or usage.get("prompt_tokens") != COUNT_PROMPT:
            return status, headers, json.dumps(body).encode()
        usage["prompt_tokens"] = prompt_tokens(request)
        usage["total_tokens"] = usage["prompt_tokens"] + int(usage.get("completion_tokens") or 0)
        with self.lock:
            self.prompt_tokens.append(usage["prompt_tokens"])
        return status, headers, json.dumps(body).encode()

    def _fault(self, kind: str) -> int | Reply | None:
        with self.lock:
            pending = self.faults.get(kind)
            fault = pending.pop(0) if pending else None
        if fault == STALL:
            time.sleep(self.stall_seconds)
            return None
        return fault

    @staticmethod
    def _plain(status: int, body: bytes) -> Reply:
        return status, {"content-type": "text/plain"}, body


def serve(state: StandIn) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle's algorithm and the
            # client's delayed ACK hold every answer back by about 40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _reply(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, reply_headers, payload = state.answer(self.command, self.path, body, headers)
            self.send_response(status)
            for key, value in reply_headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            pause = state.trickle_for(self.path)
            try:
                if not pause:
                    self.wfile.write(payload)
                    return
                for byte in payload:  # every gap shorter than any client's read timeout
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(pause)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a trickle, a slow answer past its timeout)

        do_GET = do_POST = _reply

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    ).start()
    return server


def hf_item(paper: ArxivPaper, upvotes: int) -> dict[str, Any]:
    """One entry of Hugging Face's /api/daily_papers, with the fields digest reads and more."""
    return {
        "paper": {
            "id": paper.arxiv_id,
            "title": paper.title,
            "summary": paper.abstract,
            "upvotes": upvotes,
            "authors": [{"name": name} for name in paper.authors],
            "publishedAt": "2025-12-14T10:00:00.000Z",
        },
        "publishedAt": "2025-12-16T01:00:00.000Z",
        "title": paper.title,
        "numComments": 2,
    }


# --- LLM servers as they really answer --------------------------------------------------


def like_deepseek(answer: Callable[[dict[str, Any]], Reply]) -> Callable[[dict[str, Any]], Reply]:
    """DeepSeek's API: JSON mode, but json_schema is rejected with HTTP 422."""

    def reply(request: dict[str, Any]) -> Reply:
        if request.get("response_format", {}).get("type") == "json_schema":
            return error_reply(
                422,
                "response_format type json_schema is unavailable",
                type="invalid_request_error",
                code="invalid_request_error",
            )
        return answer(request)

    return reply


# llama-cpp-python's server (0.3.36) validates response_format against ('text', 'json_object')
# and answers the pydantic error with HTTP 500, over several lines, a traceback line included:
# recorded from the real server.
LLAMA_CPP_PYTHON_500 = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', "
    "'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', "
    "'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n  File \"/usr/lib/python3/"
    'site-packages/llama_cpp/server/app.py", line 376, in create_chat_completion\n'
    "    POST /v1/chat/completions"
)


def like_llama_cpp_python(
    answer: Callable[[dict[str, Any]], Reply],
) -> Callable[[dict[str, Any]], Reply]:
    def reply(request: dict[str, Any]) -> Reply:
        if request.get("response_format", {}).get("type") == "json_schema":
            return error_reply(500, LLAMA_CPP_PYTHON_500, type="internal_server_error", param=None)
        return answer(request)

    return reply


def reasoning_model(
    content: str, *, reasoning_tokens: int = 3000, answer_tokens: int = 250
) -> Callable[[dict[str, Any]], Reply]:
    """An OpenAI reasoning model (o-series, gpt-5): only the default temperature, no
    max_tokens, and its reasoning spent out of max_completion_tokens (all of it, and no
    answer, when the limit is too small)."""

    def reply(request: dict[str, Any]) -> Reply:
        temperature = request.get("temperature")
        if temperature is not None and temperature != 1:
            return error_reply(
                400,
                f"Unsupported value: 'temperature' does not support {temperature} with this "
                "model. Only the default (1) value is supported.",
                type="invalid_request_error",
                param="temperature",
                code="unsupported_value",
            )
        if "max_tokens" in request:
            return error_reply(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                "'max_completion_tokens' instead.",
                type="invalid_request_error",
                param="max_tokens",
                code="unsupported_parameter",
            )
        limit = request.get("max_completion_tokens") or 1_000_000
        if limit < reasoning_tokens + answer_tokens:
            return completion(
                "",
                finish_reason="length",
                usage=_usage(limit, min(limit, reasoning_tokens)),
            )
        return completion(content, usage=_usage(reasoning_tokens + answer_tokens, reasoning_tokens))

    return reply


def _usage(completion_tokens: int, reasoning_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": COUNT_PROMPT,
        "completion_tokens": completion_tokens,
        "total_tokens": COUNT_PROMPT,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def cuts_prompt(context_tokens: int = 4096) -> Callable[[dict[str, Any]], Reply]:
    """Ollama's /v1 with its default 4k context: the prompt is cut silently to the context,
    the model answers whatever the rest of it suggests, and usage reports what it read."""

    def reply(request: dict[str, Any]) -> Reply:
        read = min(prompt_tokens(request), context_tokens)
        garbage = json.dumps({"summary": "The paper discusses several results."})
        return completion(
            garbage,
            usage={"prompt_tokens": read, "completion_tokens": 20, "total_tokens": read + 20},
        )

    return reply


def small_context(
    answer: Callable[[dict[str, Any]], Reply], context_tokens: int = 8192
) -> Callable[[dict[str, Any]], Reply]:
    """llama.cpp's llama-server: a prompt over its context is a 400 that says so (its body,
    as the real server sends it)."""

    def reply(request: dict[str, Any]) -> Reply:
        needed = prompt_tokens(request)
        if needed > context_tokens:
            return error_reply(
                400,
                f"request ({needed} tokens) exceeds the available context size "
                f"({context_tokens} tokens), try increasing it",
                type="exceed_context_size_error",
                n_prompt_tokens=needed,
                n_ctx=context_tokens,
            )
        return answer(request)

    return reply
