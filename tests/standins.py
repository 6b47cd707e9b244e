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

import json
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


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return json_reply(
        status, {"error": {"message": message, "type": "standin", "code": None}}, headers
    )


def atom_feed(papers: list[ArxivPaper], total: int | None = None) -> bytes:
    entries = []
    for paper in papers:
        authors = "".join(f"<author><name>{escape(name)}</name></author>" for name in paper.authors)
        comment = f"<arxiv:comment>{escape(paper.comment)}</arxiv:comment>" if paper.comment else ""
        versioned = f"{paper.arxiv_id}v{paper.version}"
        entries.append(
            f"""<entry>
    <id>http://arxiv.org/abs/{versioned}</id>
    <updated>2025-12-15T10:00:00Z</updated>
    <published>2025-12-14T10:00:00Z</published>
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
    faults: dict[str, list[int]] = field(default_factory=dict)
    llm_requests: list[dict[str, Any]] = field(default_factory=list)
    llm_headers: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)  # reported, answer by answer
    arxiv_requests: list[dict[str, list[str]]] = field(default_factory=list)
    arxiv_times: list[float] = field(default_factory=list)  # time.monotonic() of each request
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
                self.arxiv_times.append(time.monotonic())
            fault = self._fault("arxiv")
            if fault:
                return fault, {"content-type": "text/plain"}, b"arXiv is down"
            if query.get("search_query", [""])[0]:
                return 200, {"content-type": "application/atom+xml"}, atom_feed(self.search_results)
            wanted = query.get("id_list", [""])[0].split(",")
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
                return fault, {"content-type": "text/plain"}, b"PDF host error"
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
            items = self.hf_days.get(params.get("date", ""), [])
            page, limit = int(params.get("p", "0")), int(params.get("limit", "50"))
            return json_reply(200, items[page * limit : (page + 1) * limit])
        return 404, {"content-type": "text/plain"}, b"unknown path"

    def _count_prompt(self, request: dict[str, Any], reply: Reply) -> Reply:
        """Fill in ``COUNT_PROMPT`` with the request's prompt tokens, and record them."""
        status, headers, payload = reply
        try:
            body = json.loads(payload)
        except ValueError:
            return reply
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict) or usage.get("prompt_tokens") != COUNT_PROMPT:
            return reply
        usage["prompt_tokens"] = prompt_tokens(request)
        usage["total_tokens"] = usage["prompt_tokens"] + int(usage.get("completion_tokens") or 0)
        with self.lock:
            self.prompt_tokens.append(usage["prompt_tokens"])
        return status, headers, json.dumps(body).encode()

    def _fault(self, kind: str) -> int | None:
        with self.lock:
            pending = self.faults.get(kind)
            fault = pending.pop(0) if pending else None
        if fault == STALL:
            time.sleep(self.stall_seconds)
            return None
        return fault


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
            self.wfile.write(payload)

        do_GET = do_POST = _reply

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
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
