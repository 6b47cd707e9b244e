"""The Batch API stand-in, driven by the real ``openai`` client over a socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import openai
import pytest
from openai.types import Batch, FileObject

from tests.standins import StandIn, completion, error_reply

ENDPOINT: Final = "/v1/chat/completions"


def line(custom_id: str, question: str, **fields: Any) -> dict[str, Any]:
    body = {"model": "standin-model", "messages": [{"role": "user", "content": question}]}
    return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body, **fields}


def jsonl(*lines: dict[str, Any] | str) -> bytes:
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines).encode()


def echo(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """An answer that names its question, to match answers to requests by."""
    return completion(f"answer to {request['messages'][0]['content']}")


@pytest.fixture
def client(standin: StandIn) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{standin.url}/v1", api_key="sk-test", max_retries=0) as made:
        yield made


def upload(client: openai.OpenAI, data: bytes, purpose: Any = "batch") -> FileObject:
    return client.files.create(file=("requests.jsonl", data), purpose=purpose)


def start(client: openai.OpenAI, data: bytes) -> Batch:
    uploaded = upload(client, data)
    return client.batches.create(
        input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h"
    )


def statuses(client: openai.OpenAI, batch_id: str, polls: int) -> list[str]:
    return [client.batches.retrieve(batch_id).status for _ in range(polls)]


def read_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(text) for text in client.files.content(file_id).text.splitlines()]


def test_a_batch_is_uploaded_run_and_its_output_downloaded(
    standin: StandIn, client: openai.OpenAI
) -> None:
    standin.llm_default = echo
    data = jsonl(*(line(f"paper-{n}", f"question {n}") for n in range(5)))

    uploaded = upload(client, data)
    assert uploaded.id.startswith("file-")
    assert (uploaded.object, uploaded.purpose, uploaded.status) == ("file", "batch", "processed")
    assert (uploaded.bytes, uploaded.filename) == (len(data), "requests.jsonl")
    assert standin.files[uploaded.id].data == data
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).content == data

    response = client.batches.with_raw_response.create(
        input_file_id=uploaded.id,
        endpoint=ENDPOINT,
        completion_window="24h",
        metadata={"day": "2025-12-16"},
    )
    # Every field of the SDK's type, on the wire.
    assert set(Batch.model_fields) <= set(response.http_response.json())
    created = response.parse()
    assert created.id.startswith("batch_") and created.status == "validating"
    assert created.expires_at == created.created_at + 86_400
    assert created.metadata == {"day": "2025-12-16"} and created.output_file_id is None

    in_progress = client.batches.retrieve(created.id)
    assert in_progress.status == "in_progress" and in_progress.in_progress_at
    assert in_progress.request_counts is not None and in_progress.request_counts.total == 5
    assert standin.batch_requests == []  # nothing answered yet
    assert statuses(client, created.id, 2) == ["finalizing", "completed"]
    done = client.batches.retrieve(created.id)
    assert done.status == "completed" and done.completed_at and done.finalizing_at
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (5, 0)
    assert done.error_file_id is None
    output = client.files.retrieve(done.output_file_id or "")
    assert output.purpose == "batch_output"

    lines = read_lines(client, done.output_file_id)
    ids = [item["custom_id"] for item in lines]
    assert sorted(ids) == [f"paper-{n}" for n in range(5)]
    assert ids != sorted(ids)  # the real API does not keep the input's order
    for item in lines:
        assert item["id"].startswith("batch_req_") and item["error"] is None
        response = item["response"]
        assert response["status_code"] == 200 and response["request_id"].startswith("req_")
        number = item["custom_id"].removeprefix("paper-")
        message = response["body"]["choices"][0]["message"]["content"]
        assert message == f"answer to question {number}"
    assert standin.batch_requests == [json.loads(text)["body"] for text in data.splitlines()]
    assert standin.llm_requests == []  # those are the interactive requests only
    assert len(standin.batch_api_calls) == 10
    assert standin.batch_api_calls[:2] == [
        ("POST", "/v1/files"),
        ("GET", f"/v1/files/{uploaded.id}"),
    ]


def test_the_chat_api_and_the_batches_answer_from_one_script(
    standin: StandIn, client: openai.OpenAI
) -> None:
    standin.llm_script = [completion("first"), completion("second")]
    chat = client.chat.completions.create(
        model="standin-model", messages=[{"role": "user", "content": "interactive"}]
    )
    assert chat.choices[0].message.content == "first"
    batch = start(client, jsonl(line("only", "batched")))
    assert statuses(client, batch.id, 3)[-1] == "completed"
    output = read_lines(client, client.batches.retrieve(batch.id).output_file_id)
    assert output[0]["response"]["body"]["choices"][0]["message"]["content"] == "second"
    # The prompt is counted as for a chat request.
    assert output[0]["response"]["body"]["usage"]["prompt_tokens"] == standin.prompt_tokens[1] > 0
    assert [request["messages"][0]["content"] for request in standin.llm_requests] == [
        "interactive"
    ]
    assert [request["messages"][0]["content"] for request in standin.batch_requests] == ["batched"]


def test_a_batch_moves_on_every_few_retrieves(standin: StandIn, client: openai.OpenAI) -> None:
    standin.batch_polls_per_step = 2
    batch = start(client, jsonl(line("a", "q")))
    assert statuses(client, batch.id, 7) == [
        "validating",
        "in_progress",
        "in_progress",
        "finalizing",
        "finalizing",
        "completed",
        "completed",
    ]


def test_an_error_answer_goes_to_the_error_file(standin: StandIn, client: openai.OpenAI) -> None:
    refusal = error_reply(400, "max_tokens is too large", type="invalid_request_error")
    standin.llm_script = [completion("one"), refusal, completion("three")]
    batch = start(client, jsonl(line("a", "1"), line("b", "2"), line("c", "3")))
    assert statuses(client, batch.id, 3)[-1] == "completed"
    done = client.batches.retrieve(batch.id)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)

    assert sorted(item["custom_id"] for item in read_lines(client, done.output_file_id)) == [
        "a",
        "c",
    ]
    [failed] = read_lines(client, done.error_file_id)
    assert failed["custom_id"] == "b" and failed["error"] is None
    assert failed["response"]["status_code"] == 400
    assert failed["response"]["body"]["error"]["message"] == "max_tokens is too large"
    assert client.files.retrieve(done.error_file_id or "").filename == f"{batch.id}_error.jsonl"


def test_an_expired_batch_has_the_lines_answered_before_it_expired(
    standin: StandIn, client: openai.OpenAI
) -> None:
    standin.llm_default = echo
    standin.batch_outcomes = [("expired", 2)]
    batch = start(client, jsonl(*(line(f"p{n}", f"q{n}") for n in range(5))))
    assert statuses(client, batch.id, 3) == ["in_progress", "expired", "expired"]
    expired = client.batches.retrieve(batch.id)
    assert expired.expired_at and expired.completed_at is None and expired.finalizing_at is None
    assert expired.request_counts is not None
    assert (expired.request_counts.completed, expired.request_counts.failed) == (2, 3)

    answered = read_lines(client, expired.output_file_id)
    assert sorted(item["custom_id"] for item in answered) == ["p0", "p1"]
    unanswered = read_lines(client, expired.error_file_id)
    assert sorted(item["custom_id"] for item in unanswered) == ["p2", "p3", "p4"]
    for item in unanswered:
        assert item["response"] is None
        assert item["error"] == {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        }
    assert len(standin.batch_requests) == 2


def test_a_failed_batch_says_why_and_answers_nothing(
    standin: StandIn, client: openai.OpenAI
) -> None:
    standin.batch_outcomes = ["failed", "completed"]
    batch = start(client, jsonl(line("a", "q")))
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.failed_at and failed.in_progress_at is None
    assert failed.errors is not None and failed.errors.object == "list"
    assert [(error.code, error.line) for error in failed.errors.data or []] == [
        ("invalid_request", None)
    ]
    assert failed.output_file_id is None and failed.error_file_id is None
    assert statuses(client, batch.id, 2) == ["failed", "failed"]
    assert standin.batch_requests == []
    # The next batch pops the next outcome.
    assert statuses(client, start(client, jsonl(line("a", "q"))).id, 3)[-1] == "completed"


@pytest.mark.parametrize(
    ("lines", "code", "number"),
    [
        ((line("a", "q"), line("b", "q"), line("a", "q")), "duplicate_custom_id", 3),
        ((line("a", "q"), "{not json"), "invalid_json_line", 2),
        (
            (line("a", "q"), {"method": "POST", "url": ENDPOINT, "body": {}}),
            "missing_required_parameter",
            2,
        ),
        ((line("a", "q"), line("b", "q", url="/v1/embeddings")), "invalid_url", 2),
    ],
)
def test_a_bad_line_fails_the_batch_at_its_validation(
    standin: StandIn, client: openai.OpenAI, lines: tuple[Any, ...], code: str, number: int
) -> None:
    batch = start(client, jsonl(*lines))
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.errors is not None
    assert [(error.code, error.line) for error in failed.errors.data or []] == [(code, number)]
    assert standin.batch_requests == []


def test_a_server_without_the_batch_api_answers_404(
    standin: StandIn, client: openai.OpenAI
) -> None:
    standin.batches_supported = False
    with pytest.raises(openai.NotFoundError) as refused:
        upload(client, jsonl(line("a", "q")))
    assert refused.value.body == {"detail": "Not Found"}
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-x", endpoint=ENDPOINT, completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_x")
    assert standin.batch_api_calls == [
        ("POST", "/v1/files"),
        ("POST", "/v1/batches"),
        ("GET", "/v1/batches/batch_x"),
    ]
    # The chat API is still there.
    standin.llm_default = echo
    chat = client.chat.completions.create(
        model="standin-model", messages=[{"role": "user", "content": "q"}]
    )
    assert chat.choices[0].message.content == "answer to q"


def test_unknown_files_and_batches_are_404s(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        client.files.retrieve("file-nope")
    assert unknown.value.body == {
        "message": "No such File object: file-nope",
        "type": "invalid_request_error",
        "param": "id",
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-nope")
    with pytest.raises(openai.NotFoundError) as no_batch:
        client.batches.retrieve("batch_nope")
    assert no_batch.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    # As the real API: a batch of a file it cannot find is made, and fails its validation.
    batch = client.batches.create(
        input_file_id="file-nope", endpoint=ENDPOINT, completion_window="24h"
    )
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.errors is not None
    [error] = failed.errors.data or []
    assert (error.code, error.param) == ("invalid_request", "file_id")


def test_the_create_refusals(client: openai.OpenAI) -> None:
    uploaded = upload(client, jsonl(line("a", "q")))
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
        )
    assert refused.value.body["param"] == "endpoint"  # type: ignore[index]
    assert refused.value.code == "invalid_value"
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(
            input_file_id=uploaded.id,
            endpoint=ENDPOINT,
            completion_window="1h",  # type: ignore[arg-type]
        )
    assert refused.value.body["param"] == "completion_window"  # type: ignore[index]
    other = upload(client, jsonl(line("a", "q")), purpose="user_data")
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=other.id, endpoint=ENDPOINT, completion_window="24h")
    assert refused.value.body["param"] == "input_file_id"  # type: ignore[index]
    # A batch file sent as bare bytes is named "upload" by httpx, and refused.
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        client.files.create(file=jsonl(line("a", "q")), purpose="batch")


def test_cancel_and_list(standin: StandIn, client: openai.OpenAI) -> None:
    first = start(client, jsonl(line("a", "q")))
    second = start(client, jsonl(line("a", "q")))
    cancelling = client.batches.cancel(second.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    cancelled = client.batches.retrieve(second.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at
    assert client.batches.cancel(second.id).status == "cancelled"
    assert statuses(client, first.id, 3)[-1] == "completed"
    with pytest.raises(openai.ConflictError, match="Cannot cancel a batch with status 'completed'"):
        client.batches.cancel(first.id)
    assert standin.batch_requests == [line("a", "q")["body"]]  # the cancelled one never ran

    page = client.batches.list(limit=1)
    assert [batch.id for batch in page.data] == [second.id] and page.has_more
    assert [batch.id for batch in client.batches.list()] == [second.id, first.id]
    assert [batch.id for batch in client.batches.list(limit=1)] == [second.id, first.id]


def test_an_upload_is_read_from_its_multipart_body(standin: StandIn, client: openai.OpenAI) -> None:
    # Bytes that look like a part's end, in the file: only the boundary ends it.
    tricky = jsonl(line("a", "q")) + b"\r\n\r\n--x\r\n--\r\n\xff\r\n"
    uploaded = upload(client, tricky)
    assert standin.files[uploaded.id].data == tricky
    assert client.files.content(uploaded.id).content == tricky
    client.files.delete(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
