"""Local stand-ins for the services digest talks to, as real HTTP servers on 127.0.0.1.

One threaded server answers three kinds of request, so the real ``openai``, ``arxiv`` and
``httpx2`` clients run over real sockets:

- ``POST /v1/chat/completions``: an OpenAI-compatible API. It answers from ``llm_script``
  (one scripted reply per request, then ``llm_default``) and records every request body.
  ``GET /v1/models`` lists ``models`` as OpenAI does (``models_route=False``: a server
  without it, 404). With ``api_key`` set, a request with another key gets OpenAI's 401.
- ``POST /v1/embeddings``: OpenAI's embeddings, deterministic (``embed``: a bag of words
  hashed into 64 dimensions, so texts that share words are similar); every request is
  recorded in ``embedding_requests``, and ``embedding_tamper`` may rewrite each answer.
- OpenAI's Batch API, over its Files API: ``POST /v1/files`` (a multipart upload),
  ``GET /v1/files``, ``GET /v1/files/<id>``, ``GET /v1/files/<id>/content``,
  ``DELETE /v1/files/<id>``, ``POST /v1/batches``, ``GET /v1/batches``,
  ``GET /v1/batches/<id>`` and ``POST /v1/batches/<id>/cancel``. A batch moves one status on
  every ``batch_polls_per_step`` retrieves, ends as ``batch_outcomes`` scripts it, and has its
  lines answered by the chat API's script, out of order (see ``StandIn.batch_outcomes``).
  ``batches_supported=False`` makes it a server without them (vLLM's 404).
- ``GET /api/query``: the arXiv API, answering Atom like the real one for ``papers``.
- ``GET /pdf/<id>``: the PDF host, serving ``pdfs`` (ID with version → bytes).
- ``GET /hf/daily_papers``: Hugging Face's Daily Papers API, paging ``hf_days`` (date → items).

``faults`` injects a status for the next requests of a kind (``"arxiv"``, ``"pdf"`` or
``"models"``); the status ``STALL`` instead holds the request for ``stall_seconds`` before
answering normally.
``holds`` keeps the requests of a kind waiting until the test releases them (see ``Hold``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse
from uuid import uuid4
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


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
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


# --- OpenAI's Files API and Batch API ---------------------------------------------------
#
# As platform.openai.com/docs/api-reference/batch and /files describe them. The messages and
# codes are the real API's where they have been seen: llama-stack runs its batch tests against
# OpenAI and records its answers (tests/integration/batches/test_batches_errors.py), as does
# LiteLLM for the uploads (BerriAI/litellm#37527).

# What a batch does once created, popped from ``StandIn.batch_outcomes`` (default
# "completed"): "failed" fails its validation with BATCH_FAILED_ERROR; "expired" runs out of
# its completion window before any line is answered, and ("expired", K) after the first K.
BatchOutcome = Literal["completed", "failed", "expired"] | tuple[Literal["expired"], int]

BATCH_ENDPOINT = "/v1/chat/completions"  # the only one the stand-in runs
# The endpoints the real API lists when it refuses one.
_BATCH_ENDPOINTS = (
    "'/v1/chat/completions', '/v1/completions', '/v1/embeddings', and '/v1/responses'"
)
_UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_BATCH_DONE = ("completed", "failed", "expired", "cancelled")
_FILE_LIFETIME = 30 * 86400  # a batch file, input or output, expires after 30 days
BATCH_EXPIRED_ERROR = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}
BATCH_FAILED_ERROR = {
    "code": "invalid_request",
    "message": "The batch could not be validated.",
    "param": None,
    "line": None,
}
# Both APIs' paths, with any prefix before /v1 (as the chat API's), and their parts.
_BATCH_API = re.compile(r".*/v1/(?:files|batches)(?:/.*)?")
_BATCH_ROUTE = re.compile(
    r".*/v1/(?P<kind>files|batches)(?:/(?P<id>[^/]+)(?:/(?P<action>[^/]+))?)?"
)
# The real API's answer to a body that is not JSON.
_NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)


def invalid_request(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> Reply:
    """The real API's error body, fields in its order."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return json_reply(status, {"error": error})


def _new_id(prefix: str) -> str:
    """An object ID: the prefix and hex (the real file IDs are 22 base62 characters)."""
    return prefix + uuid4().hex


def form_fields(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body, name → (filename, content), read between the
    boundaries the content type names; {} for any other body."""
    match = re.match(r'multipart/form-data\s*;.*?\bboundary="?([^";\s]+)"?', content_type, re.I)
    if not match:
        return {}
    delimiter = b"--" + match[1].encode()
    fields: dict[str, tuple[str | None, bytes]] = {}
    start = body.find(delimiter)
    while start >= 0 and not body.startswith(b"--", start + len(delimiter)):  # not the last
        start += len(delimiter)
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            break
        head_end = body.find(b"\r\n\r\n", start, end)
        if head_end >= 0:
            head = body[start:head_end].decode("utf-8", "replace").split("\r\n")
            disposition = next(
                (line for line in head if line.lower().startswith("content-disposition:")), ""
            )
            name = re.search(r';\s*name="([^"]*)"', disposition)
            filename = re.search(r';\s*filename="([^"]*)"', disposition)
            if name:
                fields[name[1]] = (filename[1] if filename else None, body[head_end + 4 : end])
        start = end + 2
    return fields


def read_batch_input(
    data: bytes, endpoint: str
) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
    """A batch input file's requests (custom_id, body), and the errors that fail the batch as
    the real API lists them: every bad line, each by its number from 1."""
    requests: list[tuple[str, dict[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    lines = data.split(b"\n")
    if not lines[-1].strip():
        lines.pop()  # the end of the last line
    if not lines:
        message = "The batch input file is empty."
        errors.append({"code": "empty_file", "message": message, "param": None, "line": None})
    for number, raw in enumerate(lines, 1):
        read = _read_batch_line(raw, endpoint, seen)
        if isinstance(read, dict):
            errors.append({**read, "line": number})
        else:
            requests.append(read)
    return requests, errors


def _read_batch_line(
    raw: bytes, endpoint: str, seen: set[str]
) -> tuple[str, dict[str, Any]] | dict[str, Any]:
    """A line's request (custom_id, body), or the error it fails the batch with (its code,
    message and param); ``seen`` collects the custom_ids."""

    def error(code: str, message: str, param: str | None = None) -> dict[str, Any]:
        return {"code": code, "message": message, "param": param}

    try:
        line = json.loads(raw)
    except ValueError:
        line = None
    if not isinstance(line, dict):
        return error("invalid_json_line", "This line is not parseable as valid JSON.")
    missing = next((key for key in ("custom_id", "method", "url", "body") if key not in line), "")
    if missing:
        message = f"Missing required parameter: '{missing}'."
        return error("missing_required_parameter", message, missing)
    custom_id, body = line["custom_id"], line["body"]
    if not isinstance(custom_id, str) or not isinstance(body, dict):
        key = "custom_id" if not isinstance(custom_id, str) else "body"
        return error("invalid_type", f"Invalid type for '{key}'.", key)
    if custom_id in seen:
        return error(
            "duplicate_custom_id",
            f"The custom_id '{custom_id}' for this request is a duplicate of another request. "
            "The custom_id parameter must be unique for each request in a batch.",
            "custom_id",
        )
    seen.add(custom_id)
    if line["url"] != endpoint:
        message = "The URL provided for this request does not match the batch endpoint."
        return error("invalid_url", message, "url")
    if line["method"] != "POST":  # code and message not seen from the real API
        return error("invalid_method", "Only POST requests are supported.", "method")
    if "model" not in body:
        return error("invalid_request", "Model parameter is required.", "body.model")
    if "messages" not in body:
        return error("invalid_request", "Messages parameter is required.", "body.messages")
    if body.get("stream"):
        message = "Chat Completions: Streaming is not supported in the Batch API."
        return error("streaming_unsupported", message, "body.stream")
    return custom_id, body


@dataclass
class StoredFile:
    """A file of the Files API: the File object it is served as, and its bytes."""

    meta: dict[str, Any]
    data: bytes


@dataclass
class BatchJob:
    """A batch: the Batch object it is served as, and what the stand-in keeps to run it."""

    batch: dict[str, Any]
    outcome: BatchOutcome = "completed"
    polls: int = 0  # retrieves since its last step
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # until they run
    # Written when its lines are answered, and shown once it is completed (or cancelled).
    output_file_id: str | None = None
    error_file_id: str | None = None


@dataclass
class Hold:
    """Requests of one kind held until the test says: of those whose path holds ``match``,
    the first ``after`` go through, the next wait for ``release()`` (at most ``limit``
    seconds, so that a failing test never hangs the server). ``arrived`` is set when the
    first one is held."""

    after: int = 0
    match: str = ""
    limit: float = 60.0
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait_if_held(self) -> None:
        with self.lock:
            self.seen += 1
            held = self.seen > self.after
        if held:
            self.arrived.set()
            self.released.wait(self.limit)

    def release(self) -> None:
        self.released.set()


# OpenAI's answers to a request without a key, and with one it does not know (the key shown
# as OpenAI masks it).
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    "a username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


def wrong_key(key: str) -> str:
    """OpenAI's message for a key it does not know, the key masked as it masks it."""
    shown = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else key
    return (
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )


@dataclass
class StandIn:
    """The server's state; tests read its records and change its behaviour."""

    papers: dict[str, ArxivPaper] = field(default_factory=dict)
    pdfs: dict[str, bytes] = field(default_factory=dict)
    llm_script: list[Reply | Callable[[dict[str, Any]], Reply]] = field(default_factory=list)
    llm_default: Callable[[dict[str, Any]], Reply] | None = None
    # Per kind ("arxiv", "pdf", "models"): a status (with a plain-text body), STALL, or a whole
    # Reply.
    faults: dict[str, list[int | Reply]] = field(default_factory=dict)
    llm_requests: list[dict[str, Any]] = field(default_factory=list)
    llm_bodies: list[bytes] = field(default_factory=list)  # each chat request's bytes, as sent
    llm_headers: list[dict[str, str]] = field(default_factory=list)
    # The key the OpenAI-compatible API takes; None: any, as a local server takes any.
    api_key: str | None = None
    models: list[str] = field(default_factory=lambda: ["standin-model"])
    models_route: bool = True  # False: GET /v1/models is 404, as on a server without it
    models_requests: list[dict[str, str]] = field(default_factory=list)  # their headers
    # Per kind ("llm", "models", "arxiv", "pdf", "hf"): requests held until released.
    holds: dict[str, Hold] = field(default_factory=dict)
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
    # The Files and Batch APIs. False: a server without them, which answers 404.
    batches_supported: bool = True
    # Each created batch pops one (see BatchOutcome); "completed" when none is left.
    batch_outcomes: list[BatchOutcome] = field(default_factory=list)
    batch_polls_per_step: int = 1  # retrieves of a batch for each step of its status
    # Batches from this one on (1: the first created) do not move, as if the provider were
    # busy: a test kills the client while one is in progress.
    stall_batches_from: int | None = None
    batch_shuffle_seed: int = 0  # the order of a batch's output lines (never the input's)
    # The bodies of the batch lines answered (the interactive ones are in llm_requests), and
    # (method, path) of every request to the Files and Batch APIs.
    batch_requests: list[dict[str, Any]] = field(default_factory=list)
    batch_api_calls: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, StoredFile] = field(default_factory=dict)
    batches: dict[str, BatchJob] = field(default_factory=dict)
    # Held through each Files or Batch API request, which changes files and batches and may
    # answer a batch's lines (whose answers take ``lock``).
    batch_lock: threading.Lock = field(default_factory=threading.Lock)
    # A hostile or broken server: each Files or Batch API answer, as (method, path, reply),
    # may be rewritten before it is sent.
    batch_tamper: Callable[[str, str, Reply], Reply] | None = None
    # POST /v1/embeddings: each request's body, and a hostile or slow server's hook, given the
    # request and the answer it would get, that returns the answer (a JSON body or a Reply).
    embedding_requests: list[dict[str, Any]] = field(default_factory=list)
    embedding_tamper: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | Reply] | None = (
        None
    )

    def answer(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        parsed = urlparse(path)
        hold = self.holds.get(_kind(path))
        if hold is not None and hold.match in path:
            hold.wait_if_held()
        if method == "POST" and parsed.path.endswith("/chat/completions"):
            with self.lock:
                self.llm_bodies.append(body)
            return self._chat(json.loads(body), headers)
        if method == "GET" and parsed.path.endswith("/v1/models"):
            return self._models(headers)
        if method == "POST" and parsed.path.endswith("/v1/embeddings"):
            return self._embeddings(json.loads(body), headers)
        if _BATCH_API.fullmatch(parsed.path):
            return self._batch_api(method, parsed.path, parse_qs(parsed.query), body, headers)
        if method == "GET" and parsed.path == "/api/query":
            return self._arxiv(parse_qs(parsed.query))
        if method == "GET" and parsed.path.startswith("/pdf/"):
            return self._pdf(parsed.path.removeprefix("/pdf/"))
        if method == "GET" and parsed.path == "/hf/daily_papers":
            return self._hf({key: values[0] for key, values in parse_qs(parsed.query).items()})
        return 404, {"content-type": "text/plain"}, b"unknown path"

    def _models(self, headers: dict[str, str]) -> Reply:
        with self.lock:
            self.models_requests.append(headers)
        fault = self._fault("models")
        if fault:
            return fault if isinstance(fault, tuple) else self._plain(fault, b"server error")
        if not self.models_route:
            return json_reply(404, {"detail": "Not Found"})  # as FastAPI answers one it lacks
        return self._refused_key(headers) or self._model_list()

    def _arxiv(self, query: dict[str, list[str]]) -> Reply:
        with self.lock:
            self.arxiv_requests.append(query)
            self.arxiv_times.append(self.clock())
        fault = self._fault("arxiv")
        if fault:
            return fault if isinstance(fault, tuple) else self._plain(fault, b"arXiv is down")
        if query.get("search_query", [""])[0]:
            # Pages as the API gives them: at most 2,000 entries from ``start``.
            start = int(query.get("start", ["0"])[0])
            size = min(int(query.get("max_results", ["10"])[0]), 2000)
            page = self.search_results[start : start + size]
            feed = atom_feed(page, len(self.search_results))
            return 200, {"content-type": "application/atom+xml"}, feed
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

    def _pdf(self, name: str) -> Reply:
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

    def _hf(self, params: dict[str, str]) -> Reply:
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

    def trickle_for(self, path: str) -> float:
        """Seconds between the bytes of an answer to ``path`` (0: all at once)."""
        return self.trickle.get(_kind(path), 0.0)

    def _refused_key(self, headers: dict[str, str] | None) -> Reply | None:
        """OpenAI's 401 for a request without the key ``api_key`` names; None when it has it
        (or any key will do)."""
        if self.api_key is None or headers is None:  # headers None: a batch's line
            return None
        given = headers.get("authorization", "")
        if given == f"Bearer {self.api_key}":
            return None
        key = given.removeprefix("Bearer ").strip()
        message = wrong_key(key) if key else NO_KEY
        code = "invalid_api_key" if key else None
        return invalid_request(401, message, code=code)

    def _model_list(self) -> Reply:
        """GET /v1/models, as OpenAI lists them."""
        listed = [
            {"id": name, "object": "model", "created": 1_686_935_002, "owned_by": "standin"}
            for name in self.models
        ]
        return json_reply(200, {"object": "list", "data": listed})

    def _chat(self, request: dict[str, Any], headers: dict[str, str] | None) -> Reply:
        """A chat completion's answer, from ``llm_script`` and then ``llm_default``: for an
        interactive request (recorded in ``llm_requests``, with its ``headers``), or for a line
        of a batch (``headers`` None; recorded in ``batch_requests``)."""
        with self.lock:
            if headers is None:
                self.batch_requests.append(request)
            else:
                self.llm_requests.append(request)
                self.llm_headers.append(headers)
            refused = self._refused_key(headers)  # a refused request uses no scripted answer
            if refused is None:
                step = self.llm_script.pop(0) if self.llm_script else self.llm_default
        if refused is not None:
            return refused
        if step is None:
            return error_reply(500, "stand-in has no scripted answer")
        return self._count_prompt(request, step(request) if callable(step) else step)

    def _embeddings(self, request: dict[str, Any], headers: dict[str, str]) -> Reply:
        """OpenAI's answer to an embeddings request, as ``embed`` makes the vectors."""
        with self.lock:
            self.embedding_requests.append(request)
        refused = self._refused_key(headers)
        if refused is not None:
            return refused
        given = request.get("input")
        texts = [given] if isinstance(given, str) else list(given or [])
        tokens = sum(len(text) // 4 + 1 for text in texts)
        answer: dict[str, Any] = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": embed(text)}
                for index, text in enumerate(texts)
            ],
            "model": request.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        tampered = self.embedding_tamper(request, answer) if self.embedding_tamper else answer
        return tampered if isinstance(tampered, tuple) else json_reply(200, tampered)

    def _batch_api(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        headers: dict[str, str],
    ) -> Reply:
        reply = self._batch_api_reply(method, path, query, body, headers)
        return reply if self.batch_tamper is None else self.batch_tamper(method, path, reply)

    def _batch_api_reply(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        headers: dict[str, str],
    ) -> Reply:
        with self.lock:
            self.batch_api_calls.append((method, path))
        refused = self._refused_key(headers)
        if refused is not None:
            return refused
        if not self.batches_supported:
            # vLLM's OpenAI-compatible server has no Files or Batch API (only the offline
            # ``vllm run-batch``): FastAPI answers any method on a path it does not route so.
            return json_reply(404, {"detail": "Not Found"})
        route = _BATCH_ROUTE.fullmatch(path)
        assert route  # _BATCH_API matched
        kind, item, action = route["kind"], route["id"], route["action"]
        with self.batch_lock:
            if kind == "files" and item is None and method == "POST":
                return self._upload(body, headers)
            if kind == "files" and item is None and method == "GET":
                return self._list_files(query)
            file_routes = (("GET", None), ("GET", "content"), ("DELETE", None))
            if kind == "files" and item is not None and (method, action) in file_routes:
                stored = self.files.get(item)
                if stored is None:
                    return invalid_request(404, f"No such File object: {item}", param="id")
                if action == "content":
                    return 200, {"content-type": "application/octet-stream"}, stored.data
                if method == "GET":
                    return json_reply(200, stored.meta)
                del self.files[item]
                return json_reply(200, {"id": item, "object": "file", "deleted": True})
            if kind == "batches" and item is None and method == "POST":
                return self._create_batch(body)
            if kind == "batches" and item is None and method == "GET":
                return self._list_batches(query)
            if kind == "batches" and (method, action) in (("GET", None), ("POST", "cancel")):
                job = self.batches.get(item or "")
                if job is None:
                    return invalid_request(404, f"No batch found with id '{item}'.")
                if action == "cancel":
                    return self._cancel(job)
                self._step(job)
                return json_reply(200, job.batch)
        # What the real API answers for a path or method it has not.
        return invalid_request(404, f"Invalid URL ({method} {path})")

    def _store_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        now = int(time.time())
        meta: dict[str, Any] = {
            "id": _new_id("file-"),
            "bytes": len(data),
            "created_at": now,
            "filename": filename,
            "object": "file",
            "purpose": purpose,
            "status": "processed",
            "expires_at": now + _FILE_LIFETIME if purpose.startswith("batch") else None,
            "status_details": None,
        }
        self.files[meta["id"]] = StoredFile(meta, data)
        return meta

    def _upload(self, body: bytes, headers: dict[str, str]) -> Reply:
        fields = form_fields(headers.get("content-type", ""), body)
        for name in ("purpose", "file"):
            if name not in fields:
                return invalid_request(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        purpose = fields["purpose"][1].decode("utf-8", "replace")
        filename, data = fields["file"]
        if purpose not in _UPLOAD_PURPOSES:
            return invalid_request(400, "Invalid value for purpose.", param="purpose")
        if purpose == "batch":
            # The real API checks a batch file's name (httpx names bytes sent without one
            # "upload") and its first line; a later bad line fails the batch instead.
            try:
                first = json.loads(data.split(b"\n", 1)[0])
            except ValueError:
                first = None
            if not (filename or "").endswith(".jsonl") or not isinstance(first, dict):
                return invalid_request(400, "Invalid file format for Batch API. Must be .jsonl")
        return json_reply(200, self._store_file(data, filename or "upload", purpose))

    def _list_files(self, query: dict[str, list[str]]) -> Reply:
        purpose = query.get("purpose", [None])[0]
        files = [
            stored.meta
            for stored in reversed(self.files.values())  # the newest first
            if purpose is None or stored.meta["purpose"] == purpose
        ]
        return json_reply(200, _page(files, query, default_limit=10_000))

    def _create_batch(self, body: bytes) -> Reply:
        try:
            params = json.loads(body)
        except ValueError:
            params = None
        if not isinstance(params, dict):
            return invalid_request(400, _NOT_JSON)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if name not in params:
                return invalid_request(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        endpoint, window = params["endpoint"], params["completion_window"]
        if endpoint != BATCH_ENDPOINT:
            supported = (
                # The real API runs these too; the stand-in has only chat completions.
                "'/v1/chat/completions' (in the stand-in)"
                if f"'{endpoint}'" in _BATCH_ENDPOINTS
                else _BATCH_ENDPOINTS
            )
            return invalid_request(
                400,
                f"Invalid value: '{endpoint}'. Supported values are: {supported}.",
                param="endpoint",
                code="invalid_value",
            )
        if window != "24h":
            return invalid_request(
                400,
                f"Invalid value: '{window}'. Supported values are: '24h'.",
                param="completion_window",
                code="invalid_value",
            )
        metadata = params.get("metadata")
        for key, value in (metadata or {}).items():
            if not isinstance(value, str):
                kind = "an array" if isinstance(value, list) else f"a {type(value).__name__}"
                return invalid_request(
                    400,
                    f"Invalid type for 'metadata.{key}': expected a string, but got {kind} "
                    "instead.",
                    param=f"metadata.{key}",
                    code="invalid_type",
                )
        input_file = self.files.get(params["input_file_id"])
        # A file that is not there is not refused here: the batch fails its validation.
        if input_file is not None and input_file.meta["purpose"] != "batch":
            return invalid_request(
                400,
                f"The input file must have purpose 'batch', not '{input_file.meta['purpose']}'.",
                param="input_file_id",
                code="invalid_value",
            )
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": _new_id("batch_"),
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": params["input_file_id"],
            "completion_window": window,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 86_400,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata,
            "model": None,
            "usage": _batch_usage([]),
        }
        with self.lock:
            outcome = self.batch_outcomes.pop(0) if self.batch_outcomes else "completed"
        self.batches[batch["id"]] = BatchJob(batch, outcome)
        return json_reply(200, batch)

    def _list_batches(self, query: dict[str, list[str]]) -> Reply:
        batches = [job.batch for job in reversed(self.batches.values())]  # the newest first
        return json_reply(200, _page(batches, query, default_limit=20))

    def _cancel(self, job: BatchJob) -> Reply:
        batch = job.batch
        if batch["status"] in ("completed", "failed", "expired"):
            return invalid_request(409, f"Cannot cancel a batch with status '{batch['status']}'.")
        if batch["status"] not in ("cancelling", "cancelled"):
            batch.update(status="cancelling", cancelling_at=int(time.time()))
            job.polls = 0
        return json_reply(200, batch)

    def _step(self, job: BatchJob) -> None:
        """Move a batch one status on, every ``batch_polls_per_step`` retrieves of it."""
        batch = job.batch
        if batch["status"] in _BATCH_DONE:
            return
        stalled = self.stall_batches_from
        if stalled is not None and list(self.batches).index(batch["id"]) + 1 >= stalled:
            return
        job.polls += 1
        if job.polls < self.batch_polls_per_step:
            return
        job.polls = 0
        now = int(time.time())
        status = batch["status"]
        if status == "validating":
            self._validate(job, now)
        elif status == "in_progress":
            self._run(job, now)
        elif status == "finalizing":
            batch.update(status="completed", completed_at=now)
            batch.update(output_file_id=job.output_file_id, error_file_id=job.error_file_id)
        elif status == "cancelling":
            job.requests = []
            batch.update(status="cancelled", cancelled_at=now)
            batch.update(output_file_id=job.output_file_id, error_file_id=job.error_file_id)

    def _validate(self, job: BatchJob, now: int) -> None:
        batch = job.batch
        stored = self.files.get(batch["input_file_id"])
        if stored is None:
            requests: list[tuple[str, dict[str, Any]]] = []
            errors = [
                {
                    "code": "invalid_request",
                    "message": f"Cannot find file {batch['input_file_id']}, or organization "
                    "org-standin does not have access to it.",
                    "param": "file_id",
                    "line": None,
                }
            ]
        else:
            requests, errors = read_batch_input(stored.data, batch["endpoint"])
        if not errors and job.outcome == "failed":
            errors = [dict(BATCH_FAILED_ERROR)]
        if errors:
            batch.update(status="failed", failed_at=now, errors={"object": "list", "data": errors})
            return
        job.requests = requests
        batch.update(status="in_progress", in_progress_at=now, model=requests[0][1].get("model"))
        batch["request_counts"] = {"total": len(requests), "completed": 0, "failed": 0}

    def _run(self, job: BatchJob, now: int) -> None:
        """Answer a batch's lines with the chat API's script, into its output and error
        files; the lines past an expiry are not answered, and go to the error file."""
        batch, requests = job.batch, job.requests
        job.requests = []
        expires = job.outcome == "expired" or isinstance(job.outcome, tuple)
        answered = job.outcome[1] if isinstance(job.outcome, tuple) else 0 if expires else None
        outputs: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for custom_id, body in requests[:answered]:
            status, _, payload = self._chat(body, None)
            try:
                answer = json.loads(payload)
            except ValueError:
                text = payload.decode("utf-8", "replace")
                answer = {"error": {"message": text, "type": "server_error", "param": None,
                                    "code": None}}  # fmt: skip
            line = {
                "id": _new_id("batch_req_"),
                "custom_id": custom_id,
                "response": {"status_code": status, "request_id": _new_id("req_"), "body": answer},
                "error": None,
            }
            (outputs if 200 <= status < 300 else failures).append(line)
        for custom_id, _ in requests[len(requests) if answered is None else answered :]:
            failures.append(
                {
                    "id": _new_id("batch_req_"),
                    "custom_id": custom_id,
                    "response": None,
                    "error": dict(BATCH_EXPIRED_ERROR),
                }
            )
        job.output_file_id = self._store_lines(batch["id"], "output", outputs)
        job.error_file_id = self._store_lines(batch["id"], "error", failures)
        batch["request_counts"] = {
            "total": len(requests),
            "completed": len(outputs),
            "failed": len(failures),
        }
        batch["usage"] = _batch_usage([line["response"]["body"] for line in outputs])
        if expires:
            batch.update(status="expired", expired_at=now)
            batch.update(output_file_id=job.output_file_id, error_file_id=job.error_file_id)
        else:
            batch.update(status="finalizing", finalizing_at=now)

    def _store_lines(self, batch_id: str, kind: str, lines: list[dict[str, Any]]) -> str | None:
        """A batch's output or error file, its lines in an order not the input's (the real
        API keeps none), or None when it has no lines."""
        if not lines:
            return None
        shuffled = list(lines)
        random.Random(self.batch_shuffle_seed).shuffle(shuffled)
        if shuffled == lines and len(lines) > 1:
            shuffled = shuffled[1:] + shuffled[:1]
        data = "".join(json.dumps(line) + "\n" for line in shuffled).encode()
        return str(self._store_file(data, f"{batch_id}_{kind}.jsonl", "batch_output")["id"])

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


EMBEDDING_DIMENSIONS = 64


def embed(text: str) -> list[float]:
    """A deterministic unit vector of ``text``: its words hashed into 64 dimensions, each with
    a sign, so that texts sharing words point the same way and others are near orthogonal."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    for word in re.findall(r"\w+", text.casefold()):
        digest = hashlib.md5(word.encode("utf-8")).digest()
        vector[digest[0] % EMBEDDING_DIMENSIONS] += 1.0 if digest[1] % 2 else -1.0
    norm = sum(value * value for value in vector) ** 0.5 or 1.0
    return [round(value / norm, 6) for value in vector]


def _kind(path: str) -> str:
    """Which of the stand-in's services ``path`` asks: "llm", "models", "arxiv", "pdf", "hf",
    "batches" (the Batch API; the Files API is "")."""
    return (
        "llm" if "/chat/completions" in path else "models" if "/v1/models" in path
        else "arxiv" if path.startswith("/api/query") else "pdf" if path.startswith("/pdf/")
        else "hf" if path.startswith("/hf/") else "batches" if "/v1/batches" in path else ""
    )  # fmt: skip


def _page(items: list[dict[str, Any]], query: dict[str, list[str]], default_limit: int) -> Any:
    """A page of a list, as the real API's cursor pagination serves it (``after``, ``limit``)."""
    after = query.get("after", [None])[0]
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = int(query.get("limit", [default_limit])[0] or default_limit)
    except ValueError:
        limit = default_limit
    page = items[: max(1, limit)]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > len(page),
    }


def _batch_usage(completions: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch's ``usage``: its answered lines' tokens, added up."""

    def total(*keys: str) -> int:
        count = 0
        for completion in completions:
            value: Any = completion.get("usage")
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            count += value if isinstance(value, int) else 0
        return count

    prompt, answer = total("prompt_tokens"), total("completion_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": total("prompt_tokens_details", "cached_tokens")},
        "output_tokens": answer,
        "output_tokens_details": {
            "reasoning_tokens": total("completion_tokens_details", "reasoning_tokens")
        },
        "total_tokens": prompt + answer,
    }


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

        do_GET = do_POST = do_DELETE = _reply

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    ).start()
    return server


def hf_item(paper: ArxivPaper, upvotes: int, **links: object) -> dict[str, Any]:
    """One entry of Hugging Face's /api/daily_papers, with the fields digest reads and more.
    ``links``: the paper's ``githubRepo``, ``githubStars`` and ``projectPage``, as given."""
    return {
        "paper": {
            "id": paper.arxiv_id,
            "title": paper.title,
            "summary": paper.abstract,
            "upvotes": upvotes,
            "authors": [{"name": name} for name in paper.authors],
            "publishedAt": "2025-12-14T10:00:00.000Z",
            **links,
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
    content: str | Callable[[dict[str, Any]], str],
    *,
    reasoning_tokens: int = 3000,
    answer_tokens: int = 250,
) -> Callable[[dict[str, Any]], Reply]:
    """An OpenAI reasoning model (o-series, gpt-5): only the default temperature, no
    max_tokens, and its reasoning spent out of max_completion_tokens (all of it, and no
    answer, when the limit is too small). ``content``: its answer, or what makes it from the
    request."""

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
        text = content(request) if callable(content) else content
        return completion(text, usage=_usage(reasoning_tokens + answer_tokens, reasoning_tokens))

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
