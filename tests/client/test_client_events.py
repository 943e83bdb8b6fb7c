"""Server-sent completion events: parsing, filtering, connection and closing (respx)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
import respx
from httpx_sse import ServerSentEvent

from seedance_prefect.client import SeedanceClient
from seedance_prefect.client.events import COMPLETION_EVENT, iter_completion_events, parse_event
from seedance_prefect.errors import ApiError, AuthenticationError, SeedanceConnectionError
from tests.client.clientkit import url

SUCCESS = '{"generation_id":"g1","status":"succeeded","media_type":"video","model":"m","url":"https://cdn.test/1.mp4"}'
FAILURE = '{"generation_id":"g2","status":"failed","media_type":"video","error":"Insufficient credits"}'
WIRE = (
    ": keep-alive\n\n"
    'event: deployment_updated\ndata: {"deployment": "x"}\n\n'
    f"event: {COMPLETION_EVENT}\ndata: {{not json\n\n"
    f"event: {COMPLETION_EVENT}\ndata: [1, 2]\n\n"
    f'event: {COMPLETION_EVENT}\ndata: {{"status": "succeeded"}}\n\n'
    'data: {"generation_id": "g9", "status": "succeeded"}\n\n'
    ": keep-alive\n\n"
    f"event: {COMPLETION_EVENT}\ndata: {SUCCESS}\n\n"
    f"event: {COMPLETION_EVENT}\r\ndata: {FAILURE}\r\n\r\n"
)


def sse_response(text: str = WIRE, **kwargs: object) -> httpx.Response:
    return httpx.Response(
        200, headers={"Content-Type": "text/event-stream; charset=utf-8"}, text=text, **kwargs
    )


def test_parse_event_variants(caplog: pytest.LogCaptureFixture) -> None:
    event = parse_event(ServerSentEvent(COMPLETION_EVENT, SUCCESS))
    assert event is not None
    assert (event.generation_id, event.status, event.url, event.model) == (
        "g1",
        "succeeded",
        "https://cdn.test/1.mp4",
        "m",
    )
    failed = parse_event(ServerSentEvent(COMPLETION_EVENT, FAILURE))
    assert failed is not None and failed.error == "Insufficient credits"
    assert failed.to_generation().error_message == "Insufficient credits"
    with caplog.at_level(logging.WARNING, logger="seedance_prefect.client.events"):
        assert parse_event(ServerSentEvent(COMPLETION_EVENT, "{oops")) is None
        assert parse_event(ServerSentEvent(COMPLETION_EVENT, '"text"')) is None
        assert parse_event(ServerSentEvent(COMPLETION_EVENT, '{"status": "failed"}')) is None
        assert parse_event(ServerSentEvent(COMPLETION_EVENT, "")) is None
    assert len(caplog.records) == 4
    assert parse_event(ServerSentEvent("message", SUCCESS)) is None
    extra = parse_event(
        ServerSentEvent(COMPLETION_EVENT, '{"generation_id": "g", "status": "succeeded", "x": 1}')
    )
    assert extra is not None and extra.extra_fields == {"x": 1}


def test_stream_yields_only_completion_events(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/events")).mock(return_value=sse_response())
    with client.events() as stream:
        events = list(stream)
    assert [(e.generation_id, e.status) for e in events] == [("g1", "succeeded"), ("g2", "failed")]
    request = route.calls.last.request
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Authorization"].startswith("Bearer ")
    assert stream.closed


def test_events_connects_before_returning(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/events")).mock(return_value=sse_response())
    stream = client.events()
    assert route.call_count == 1  # subscribed: safe to enqueue now
    with stream:  # entering does not connect again
        assert route.call_count == 1
        assert next(stream).generation_id == "g1"
    with pytest.raises(RuntimeError, match="closed"):
        next(stream)


def test_close_is_idempotent(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url("/events")).mock(return_value=sse_response())
    stream = client.events()
    stream.close()
    stream.close()
    assert stream.closed


def test_read_timeout(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/events")).mock(return_value=sse_response(""))
    list(client.events(read_timeout=120))
    assert route.calls.last.request.extensions["timeout"]["read"] == 120
    list(client.events())
    assert route.calls.last.request.extensions["timeout"]["read"] == 60.0


def test_wrong_content_type(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url("/events")).mock(return_value=httpx.Response(200, json={"ok": True}))
    with pytest.raises(ApiError) as info, client.events():
        pass
    assert info.value.error_type == "invalid_response" and "text/event-stream" in str(info.value)


def test_unauthenticated(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url("/events")).mock(
        return_value=httpx.Response(401, json={"error": {"type": "unauthenticated"}})
    )
    with pytest.raises(AuthenticationError):
        list(client.events())


def test_connect_is_retried(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/events")).mock(side_effect=[httpx.Response(503), sse_response()])
    assert len(list(client.events())) == 2
    assert route.call_count == 2


class _Broken(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield f"event: {COMPLETION_EVENT}\ndata: {SUCCESS}\n\n".encode()
        raise httpx.ReadError("connection reset")


def test_broken_stream_raises_connection_error(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url("/events")).mock(
        return_value=httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=_Broken())
    )
    stream = client.events()
    assert next(stream).generation_id == "g1"
    with pytest.raises(SeedanceConnectionError, match="reconnect") as info:
        next(stream)
    assert info.value.transient and isinstance(info.value.__cause__, httpx.ReadError)
    assert stream.closed


def test_iter_completion_events_from_plain_iterable() -> None:
    raw = [ServerSentEvent("ping"), ServerSentEvent(COMPLETION_EVENT, SUCCESS)]
    assert [e.generation_id for e in iter_completion_events(raw)] == ["g1"]
