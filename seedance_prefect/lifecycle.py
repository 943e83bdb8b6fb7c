"""Prefect events of a generation's life: enqueued, then succeeded, failed or cancelled.

One event per change of state, never per poll:

- ``seedance.generation.enqueued``: a POST created the generation, or the generations of a POST
  whose answer was lost were found by listing the queue (``recovered``). Not on a reattach: a re-run
  that continues with known generations emits nothing here.
- ``seedance.generation.succeeded``: the wait ended with the video ready.
- ``seedance.generation.failed``: the generation failed on the service (its message in ``error``).
- ``seedance.generation.cancelled``: it was cancelled, on the service or by us: at the wait's deadline
  (``reason`` ``"timeout"``) or when the run was interrupted (``"interrupted"``). A deadline that does
  not cancel (``cancel_on_timeout=False``) changes nothing and emits nothing.

Each has the resource ``{"prefect.resource.id": "seedance.generation.<id>", "prefect.resource.name":
"<id>", "seedance.model": "<model id>"}``, the one of ``seedance.video.delivered`` too, so a
generation's events line up in the UI. Prefect's events worker adds the flow run, task run, flow and
deployment as related resources from the run context. Payloads are small (a few numbers and a
status), never the API key or a ``data:`` URI. Outside a Prefect run, with no Prefect API set,
nothing is emitted.

Emitted by the ``enqueue_generation`` and ``wait_for_generation`` tasks (and so by a batch's
``generate_row``), and by the ``SeedanceJob`` block's trigger and wait.

Example:
    >>> generation_resource("0b6f")["prefect.resource.id"]
    'seedance.generation.0b6f'
    >>> told = []
    >>> watch = GenerationWatch("0b6f", emit=lambda *event: told.append(event[:2]))
    >>> watch.on_change(Generation(generation_id="0b6f", status="processing", duration="4"))
    >>> watch.on_change(Generation(generation_id="0b6f", status="processing", duration="4"))  # a poll
    >>> watch.succeeded(Generation(generation_id="0b6f", status="succeeded", duration="4")).status
    'succeeded'
    >>> told
    [('succeeded', '0b6f')]
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from prefect.context import FlowRunContext, TaskRunContext
from prefect.events import emit_event
from prefect.settings import PREFECT_API_URL

from . import limits
from .delivery.folder import DeliveredVideo
from .errors import GenerationCancelled, GenerationFailed
from .models import Generation, SeedanceRequest
from .pricing import estimate_cost

__all__ = [
    "GenerationWatch",
    "Outcome",
    "announce_enqueued",
    "emit_delivered",
    "emit_enqueued",
    "emit_outcome",
    "enqueued_payload",
    "generation_resource",
    "outcome_payload",
]

_LOG = logging.getLogger(__name__)

#: How a generation's wait ended, as its event says it.
Outcome = Literal["succeeded", "failed", "cancelled"]

#: Longest message kept in a payload.
MESSAGE_CHARS = 300
_DATA_URI = re.compile(r"data:[^\s,]*,[A-Za-z0-9+/=%_-]*")


def _can_emit() -> bool:
    """Inside a Prefect run, or with a Prefect API to send to (a plain script has no one to tell)."""
    return bool(FlowRunContext.get() or TaskRunContext.get() or PREFECT_API_URL.value())


def _message(text: str | None) -> str | None:
    """A message fit for a payload: ``data:`` URIs cut to ``data:...``, at most :data:`MESSAGE_CHARS`."""
    if not text:
        return None
    text = _DATA_URI.sub("data:...", str(text))
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def _cost(duration: str | int | None) -> float | None:
    try:
        return estimate_cost(duration if duration is not None else "auto", 1).usd
    except (TypeError, ValueError):
        return None


def generation_resource(generation_id: str, model: str | None = None) -> dict[str, str]:
    """The resource of every event about a generation.

    Args:
        generation_id: The generation's id.
        model: The model id (default: Seedance 2.0 reference-to-video).

    Returns:
        ``prefect.resource.id`` ``seedance.generation.<id>``, ``prefect.resource.name`` the id and the
        ``seedance.model`` label.

    Example:
        >>> generation_resource("0b6f")
        ... # doctest: +NORMALIZE_WHITESPACE
        {'prefect.resource.id': 'seedance.generation.0b6f', 'prefect.resource.name': '0b6f',
         'seedance.model': 'bytedance-seedance-2-0-reference-to-video'}
    """
    return {
        "prefect.resource.id": f"seedance.generation.{generation_id}",
        "prefect.resource.name": generation_id,
        "seedance.model": model or limits.MODEL_ID,
    }


def enqueued_payload(
    request: SeedanceRequest, *, recovered: bool = False, fingerprint: str | None = None
) -> dict[str, Any]:
    """The payload of ``seedance.generation.enqueued`` (the same for each generation of a POST).

    Args:
        request: The request as posted.
        recovered: The POST's answer was lost and its generations found by listing the queue.
        fingerprint: The request's journal key, to find its entry.

    Returns:
        ``recovered``, ``estimated_cost_usd`` (of one generation), ``duration``, ``resolution``,
        ``num_generations`` (of the POST) and ``fingerprint``.

    Example:
        >>> enqueued_payload(SeedanceRequest(prompt="p", duration="8", resolution="720p"))
        ... # doctest: +NORMALIZE_WHITESPACE
        {'recovered': False, 'estimated_cost_usd': 3.2, 'duration': '8', 'resolution': '720p',
         'num_generations': 1, 'fingerprint': None}
    """
    return {
        "recovered": recovered,
        "estimated_cost_usd": _cost(request.duration),
        "duration": str(request.duration),
        "resolution": request.resolution,
        "num_generations": request.num_generations,
        "fingerprint": fingerprint,
    }


def outcome_payload(
    row: Generation | None,
    *,
    status: str,
    wait_seconds: float,
    message: str | None = None,
    reason: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload of ``seedance.generation.succeeded`` / ``failed`` / ``cancelled``.

    Args:
        row: The generation's last row seen (its times and duration), if any.
        status: The status it ended in.
        wait_seconds: How long this wait lasted.
        message: The service's message (``error_message``) or ours; ``data:`` URIs are cut out.
        reason: For ``cancelled``: ``"timeout"``, ``"interrupted"`` or ``"service"``.
        now: Unix time of the end (default: now), when the row has no ``completed_at``.

    Returns:
        ``status``, ``seconds`` (since the generation was enqueued, by the service's clock when it
        says when it ended; None when the row does not say when it was enqueued), ``wait_seconds``,
        ``estimated_cost_usd`` (a price estimate of the generation from its duration, not a bill),
        ``error`` (the message) and ``reason``.

    Example:
        >>> row = Generation(generation_id="g1", status="failed", duration="4", enqueued_at=100.0,
        ...                  completed_at=142.5)
        >>> outcome_payload(row, status="failed", wait_seconds=40.04, message="Insufficient credits")
        ... # doctest: +NORMALIZE_WHITESPACE
        {'status': 'failed', 'seconds': 42.5, 'wait_seconds': 40.0, 'estimated_cost_usd': 1.6,
         'error': 'Insufficient credits', 'reason': None}
        >>> outcome_payload(None, status="cancelled", wait_seconds=3, reason="timeout")["seconds"] is None
        True
    """
    seconds = None
    if row is not None and row.enqueued_at is not None:
        ended = row.completed_at if row.completed_at is not None else (time.time() if now is None else now)
        seconds = round(max(0.0, ended - row.enqueued_at), 1)
    return {
        "status": status,
        "seconds": seconds,
        "wait_seconds": round(wait_seconds, 1),
        "estimated_cost_usd": _cost(row.duration) if row is not None else None,
        "error": _message(message),
        "reason": reason,
    }


def emit_enqueued(
    generation_ids: Sequence[str],
    request: SeedanceRequest,
    *,
    recovered: bool = False,
    fingerprint: str | None = None,
) -> int:
    """Emit ``seedance.generation.enqueued`` for each generation a POST created (or that was recovered).

    Args:
        generation_ids: The POST's generations.
        request: The request as posted.
        recovered: Its answer was lost and the generations found by listing the queue.
        fingerprint: The request's journal key.

    Returns:
        How many events were handed to Prefect (0 outside a run with no Prefect API set).

    Example:
        >>> from prefect.settings import PREFECT_API_URL, temporary_settings
        >>> with temporary_settings(restore_defaults={PREFECT_API_URL}):  # a plain script, no Prefect API
        ...     emit_enqueued(["g1"], SeedanceRequest(prompt="p", duration="4"))
        0
    """
    if not _can_emit():
        return 0
    payload = enqueued_payload(request, recovered=recovered, fingerprint=fingerprint)
    sent = 0
    for gid in generation_ids:
        try:
            emit_event(
                "seedance.generation.enqueued",
                resource=generation_resource(gid, request.model),
                payload=payload,
            )
            sent += 1
        except Exception as exc:  # events are for people and automations: never fail the step
            _LOG.warning("Could not emit the enqueued event of %s: %s", gid, exc)
    return sent


def announce_enqueued(
    request: SeedanceRequest, run_key: str | None = None
) -> Callable[[list[str], bool], None]:
    """The ``on_enqueued`` callback of :func:`~seedance_prefect.generation.enqueue.enqueue_once` that
    emits ``seedance.generation.enqueued`` (:func:`emit_enqueued`).

    Args:
        request: The request as posted.
        run_key: The run key it is enqueued with (for the payload's ``fingerprint``).

    Returns:
        ``on_enqueued(ids, recovered)``.

    Example:
        >>> from prefect.settings import PREFECT_API_URL, temporary_settings
        >>> on_enqueued = announce_enqueued(SeedanceRequest(prompt="p", duration="4"), "take-2")
        >>> with temporary_settings(restore_defaults={PREFECT_API_URL}):  # a plain script, no Prefect API
        ...     on_enqueued(["g1"], False)
    """
    fingerprint = request.fingerprint(run_key)

    def on_enqueued(generation_ids: list[str], recovered: bool) -> None:
        emit_enqueued(generation_ids, request, recovered=recovered, fingerprint=fingerprint)

    return on_enqueued


def emit_outcome(outcome: Outcome, generation_id: str, model: str | None, payload: dict[str, Any]) -> bool:
    """Emit the event of a generation's end: ``seedance.generation.<outcome>``.

    Args:
        outcome: ``"succeeded"``, ``"failed"`` or ``"cancelled"``.
        generation_id: The generation.
        model: Its model id (None: Seedance 2.0 reference-to-video).
        payload: From :func:`outcome_payload`.

    Returns:
        Whether the event was handed to Prefect (False outside a run with no Prefect API set).

    Example:
        >>> from prefect.settings import PREFECT_API_URL, temporary_settings
        >>> with temporary_settings(restore_defaults={PREFECT_API_URL}):  # a plain script, no Prefect API
        ...     emit_outcome("succeeded", "g1", None, {"status": "succeeded"})
        False
    """
    if not _can_emit():
        return False
    resource = generation_resource(generation_id, model)
    try:
        if outcome == "succeeded":
            emit_event("seedance.generation.succeeded", resource=resource, payload=payload)
        elif outcome == "failed":
            emit_event("seedance.generation.failed", resource=resource, payload=payload)
        else:
            emit_event("seedance.generation.cancelled", resource=resource, payload=payload)
    except Exception as exc:  # never fail the step for an event
        _LOG.warning("Could not emit the %s event of %s: %s", outcome, generation_id, exc)
        return False
    return True


def emit_delivered(deliveries: Iterable[DeliveredVideo], prompt: str) -> int:
    """Emit ``seedance.video.delivered`` for each delivered video; return how many were handed over.

    The resource is the generation (``seedance.generation.<id>``, named after the video file); the
    payload names where the video is (``video``, what the shipped contact-sheet trigger passes on),
    its sha256 and size, and the start of the prompt.

    Example:
        >>> from prefect.settings import PREFECT_API_URL, temporary_settings
        >>> with temporary_settings(restore_defaults={PREFECT_API_URL}):  # a plain script, no Prefect API
        ...     emit_delivered([], "a boat")
        0
    """
    if not _can_emit():
        return 0
    sent = 0
    for d in deliveries:
        try:
            emit_event(
                "seedance.video.delivered",
                resource={
                    "prefect.resource.id": f"seedance.generation.{d.generation_id}",
                    "prefect.resource.name": Path(d.video).name,
                },
                payload={
                    "video": d.video,
                    "sha256": d.sha256,
                    "size_bytes": d.size_bytes,
                    "prompt": prompt[:200],
                },
            )
            sent += 1
        except Exception as exc:  # never fail the delivery for an event
            _LOG.warning("Could not emit the delivered event of %s: %s", d.generation_id, exc)
    return sent


class GenerationWatch:
    """One wait for a generation, told as one event when it ends (never per poll).

    Pass :meth:`on_change` as the wait's ``on_change`` (it forwards to ``forward``), then call one of
    :meth:`succeeded`, :meth:`failed` or :meth:`cancelled` when the wait ends; only the first call
    emits. An error that says nothing about the generation (a timeout that does not cancel it, a
    broken connection) is not told: the generation has not changed.

    Args:
        generation_id: The generation waited for.
        forward: Called with each row the wait sees, as ``on_change`` would be.
        emit: Where the end is told (default :func:`emit_outcome`), with the same arguments.

    Attributes:
        reported: The outcome told so far, or None.

    Example:
        >>> told = []
        >>> watch = GenerationWatch("g1", emit=lambda *event: told.append(event))
        >>> watch.failed(GenerationCancelled("g1", "cancelled"))
        >>> watch.cancelled("timeout")  # the end is told once
        >>> [(outcome, gid, payload["reason"]) for outcome, gid, _, payload in told]
        [('cancelled', 'g1', 'service')]
    """

    def __init__(
        self,
        generation_id: str,
        forward: Callable[[Generation], None] | None = None,
        *,
        emit: Callable[[Outcome, str, str | None, dict[str, Any]], object] = emit_outcome,
    ) -> None:
        self.generation_id = generation_id
        self.forward = forward
        self._emit = emit
        self.started = time.monotonic()
        self.last: Generation | None = None
        self.reported: Outcome | None = None

    def on_change(self, row: Generation) -> None:
        """Keep the row (its times and duration go in the event), then forward it."""
        self.last = row
        if self.forward is not None:
            self.forward(row)

    def succeeded(self, row: Generation) -> Generation:
        """Tell ``succeeded``; returns ``row``."""
        self.last = row
        self._tell("succeeded", row.status)
        return row

    def failed(self, exc: GenerationFailed) -> None:
        """Tell ``failed``, or ``cancelled`` for a :class:`~seedance_prefect.errors.GenerationCancelled`."""
        if isinstance(exc, GenerationCancelled):
            self._tell("cancelled", exc.status, exc.error_message, reason="service")
        else:
            self._tell("failed", exc.status, exc.error_message)

    def cancelled(self, reason: str, message: str | None = None) -> None:
        """Tell ``cancelled``: we cancelled it (``reason`` ``"timeout"`` or ``"interrupted"``)."""
        self._tell("cancelled", "cancelled", message, reason=reason)

    def _tell(
        self, outcome: Outcome, status: str, message: str | None = None, reason: str | None = None
    ) -> None:
        if self.reported is not None:
            return
        self.reported = outcome
        payload = outcome_payload(
            self.last,
            status=status,
            wait_seconds=time.monotonic() - self.started,
            message=message,
            reason=reason,
        )
        self._emit(outcome, self.generation_id, self.last.model_name if self.last else None, payload)
