"""A Prefect progress artifact updated from a background thread.

Creating and updating an artifact are API calls (50-250 ms each on a small server). The wait for a
generation is idle time, so the calls happen there, off the waiting thread; only what is still
queued when the wait ends is waited for, briefly, when the reporter closes.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from types import TracebackType

__all__ = ["ProgressReporter"]

logger = logging.getLogger("seedance_prefect.progress")
_CLOSE = object()


class ProgressReporter:
    """Create a progress artifact and apply updates to it in order, from a background thread.

    Updates queued while a call is under way are coalesced: only the latest is sent.

    The thread runs in a copy of the caller's context, so the artifact belongs to the caller's
    flow and task run. Failures are logged and never raised: progress is for people, not for the
    pipeline.

    Args:
        description: The artifact's description.
        join_timeout: Seconds :meth:`close` waits for queued updates; 0 (default) returns at once
            and lets the thread finish the last update on its own, so a waiting task (and the
            generation slot it holds) is never delayed by the artifact API.
        min_interval: Seconds between two updates sent to the API (the latest value wins), so a
            batch finishing several rows a second does not make an API call per row.

    Example:
        ```python
        with ProgressReporter("Seedance generation g1") as progress:
            progress.update(50.0)
        ```
    """

    def __init__(self, description: str, *, join_timeout: float = 0.0, min_interval: float = 0.0) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self._join_timeout = join_timeout
        self._min_interval = min_interval
        self._closed = threading.Event()
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run, description), name="seedance-progress", daemon=True
        )
        self._thread.start()

    def _run(self, description: str) -> None:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        try:
            artifact_id = create_progress_artifact(0.0, description=description)
        except Exception as exc:
            logger.debug("progress artifact not created: %s", exc)
            artifact_id = None
        closing = False
        while not closing:
            items = [self._queue.get()]
            if self._min_interval > 0:
                self._closed.wait(self._min_interval)  # gather what comes meanwhile; close ends it
            while not self._queue.empty():  # only the latest value is worth a call
                items.append(self._queue.get_nowait())
            closing = _CLOSE in items
            values = [item for item in items if item is not _CLOSE]
            if artifact_id is None or not values:
                continue
            try:
                update_progress_artifact(artifact_id, float(values[-1]))  # type: ignore[arg-type]
            except Exception as exc:
                logger.debug("progress artifact not updated: %s", exc)

    def update(self, percent: float) -> None:
        """Queue an update to ``percent`` (0-100)."""
        self._queue.put(percent)

    def close(self) -> None:
        """Stop after the queued updates, waiting at most ``join_timeout`` seconds."""
        self._queue.put(_CLOSE)
        self._closed.set()
        if self._join_timeout > 0:
            self._thread.join(self._join_timeout)

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
