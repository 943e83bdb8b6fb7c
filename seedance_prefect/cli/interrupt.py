"""Ctrl-C and SIGTERM during a ``seedance`` command: cancel the run's remote generations first.

A flow that the CLI runs in its own process ends with the process. Its hooks
(:func:`seedance_prefect.flows.cancel_remote_generations`) cancel the generations it enqueued, but
only after Prefect has recorded the crash: several calls to the Prefect API, seconds when the API
server is busy, and never when the process is killed first (``docker stop`` waits 10 s). Meanwhile
the generations keep running, and costing. So while a command runs (:func:`cancel_first_on_interrupt`):

1. SIGINT and SIGTERM wake a watcher thread (through :func:`signal.set_wakeup_fd`, so whichever
   Python handler is installed: during a flow run Prefect replaces the SIGTERM handler with its
   own). The watcher reads the durable journal for the generations of the flow runs this process
   started and sends ``DELETE`` for each that was not delivered. No call to the Prefect server.
2. The command's own handler waits for those DELETEs (at most :data:`CANCEL_DEADLINE` seconds),
   then raises :class:`KeyboardInterrupt`, so SIGTERM still interrupts like Ctrl-C and Prefect
   records the crash and runs the hooks as before. During a flow run a SIGTERM goes to Prefect's
   handler instead, which does not wait: the DELETEs then run beside Prefect's crash handling.

Cancelling twice is harmless: the hook asks for each generation first and skips those that are no
longer active, and ``DELETE`` of an ended generation has no effect on the service (the client
returns its ``{"status": "success"}``, or an error the hook and the task log and ignore).

SIGINT is handled even when the process inherited it *ignored*: a process started in the
background of a non-interactive shell (a CI script, ``pytest ... &``) starts with SIGINT ignored,
and Python then never raises :class:`KeyboardInterrupt`, so ``kill -INT`` did nothing while the
generation ran on. A ``seedance`` command holds paid remote work: a SIGINT sent to it cancels it.

An interrupt can also land while a POST is in flight: the service may have created the generations
while their ids are not journaled yet (the attempt is still ``posting``). The watcher then lists
the queue as a re-run does and cancels what matches the request
(:mod:`seedance_prefect.generation.cancel`, shared with the flows' hooks), but only for attempts of
this command's flow runs that this process posts (or whose poster is gone): an attempt that
another live process is posting (another machine sharing the journal) is left to it.

Example:
    ```python
    from seedance_prefect.cli.interrupt import cancel_first_on_interrupt

    with cancel_first_on_interrupt() as interrupt:
        reference_to_video(request, output="videos")   # Ctrl-C: DELETE first, then KeyboardInterrupt
    ```
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..generation.cancel import cancel_leftovers, left_by
from ..generation.journal import Journal

if TYPE_CHECKING:
    from ..credentials import OxenCredentials

__all__ = [
    "CANCEL_DEADLINE",
    "CANCEL_REQUEST_TIMEOUT",
    "Interruption",
    "cancel_first_on_interrupt",
    "flow_runs_of_this_process",
    "generations_to_cancel",
]

#: Seconds one DELETE may take (no retry: the flow's hooks try again).
CANCEL_REQUEST_TIMEOUT = 3.0
#: Seconds the interrupt waits for the DELETEs before it goes on (the rest is left to the hooks).
CANCEL_DEADLINE = 8.0
#: DELETEs sent at the same time (a batch can have many generations in flight).
CANCEL_CONCURRENCY = 8

#: Flow run id -> the credentials it runs with, for the flow runs started in this process.
FlowRuns = Callable[[], Mapping[str, "OxenCredentials"]]

_STOP = b"\0"  # not a signal number: tells the watcher to end

#: The cancels' own log lines stay out of the terminal: :meth:`Interruption.describe` reports them.
_QUIET = logging.getLogger(f"{__name__}.cancel")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def generations_to_cancel(journal: Journal, flow_run_ids: Iterable[str]) -> list[str]:
    """Return the generations the journal records for these flow runs that were not delivered.

    Only reads the journal's files (no lock, no network), so it can run at any moment.

    Args:
        journal: The durable enqueue journal the flow runs wrote to.
        flow_run_ids: Ids of the flow runs (linked by ``Journal.link_flow_run``).

    Returns:
        Generation ids, oldest first, each once.

    Example:
        >>> import tempfile
        >>> from seedance_prefect.generation.journal import JournalEntry
        >>> journal = Journal(tempfile.mkdtemp())
        >>> entry = JournalEntry(fingerprint="abc"); entry.begin_attempt().record(["g1", "g2"])
        >>> entry.deliveries["g1"] = {"video": "out/a.mp4", "sha256": "00"}
        >>> journal.save(entry); journal.link_flow_run("run-1", "abc")
        >>> generations_to_cancel(journal, ["run-1", "run-2"])
        ['g2']
    """
    return left_by(journal, flow_run_ids).known


def flow_runs_of_this_process() -> dict[str, OxenCredentials]:
    """Return the flow runs of ``reference_to_video`` and the batch flow started in this process.

    They register their id and credentials when they start (``seedance_prefect.flows``); nothing
    is imported here, so before the first flow run (or without Prefect imported) this is empty.

    Example:
        >>> isinstance(flow_runs_of_this_process(), dict)
        True
    """
    flows = sys.modules.get("seedance_prefect.flows")
    runs = getattr(flows, "_RUN_CREDENTIALS", None)
    return dict(runs) if runs else {}


@dataclass
class Interruption:
    """What an interrupt did, filled in by :func:`cancel_first_on_interrupt`.

    Attributes:
        signal: The first SIGINT or SIGTERM received (None: not interrupted).
        cancelled: Generations a DELETE was sent for and accepted.
        recovered: Generations of a POST in flight (not journaled yet) found by listing the queue
            (also in ``cancelled`` or ``not_cancelled``).
        not_cancelled: Generations whose DELETE failed or was not sent in time, and why (the
            flow's hooks try them again).
        seconds: From the signal to the last DELETE's answer.
        error: Why the journal could not be read or no DELETE could be sent, if so.
        finished: Set when the DELETEs are done (or given up).
    """

    signal: int | None = None
    cancelled: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    not_cancelled: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def describe(self) -> str:
        """One line for the terminal (ids only, never a secret); empty when nothing was cancelled.

        Example:
            >>> Interruption(signal=2, cancelled=["g1"], seconds=0.04).describe()
            'Cancelled remote generation g1 (0.04 s after the interrupt).'
            >>> Interruption(signal=2).describe()
            ''
        """
        lines = []
        if self.cancelled:
            plural = "s" if len(self.cancelled) > 1 else ""
            lines.append(
                f"Cancelled remote generation{plural} {', '.join(self.cancelled)} "
                f"({self.seconds:.2f} s after the interrupt)."
            )
        lines += [f"Could not cancel generation {g} yet: {why}" for g, why in self.not_cancelled.items()]
        if self.error:
            lines.append(f"Could not cancel the remote generations yet ({self.error}); the flow's hooks try.")
        return "\n".join(lines)


class _Canceller:
    """The watcher thread and the signal handler of one :func:`cancel_first_on_interrupt` block."""

    def __init__(self, journal: Journal, flow_runs: FlowRuns, interruption: Interruption) -> None:
        self.journal, self.flow_runs, self.state = journal, flow_runs, interruption
        self.before = set(flow_runs())  # flow runs of earlier commands in this process are not ours
        self.started = threading.Event()
        self.handled = False  # the handler ran once (a second signal interrupts at once)
        self.received_at = 0.0
        self._lock = threading.Lock()

    def cancel(self, signum: int) -> None:
        """Send the DELETEs, once per block (whichever of the watcher and the handler comes first)."""
        with self._lock:
            if self.started.is_set():
                return
            self.started.set()
            self.received_at = time.monotonic()
            self.state.signal = self.state.signal or signum
        try:
            self._cancel_all(self.received_at + CANCEL_DEADLINE)
        except Exception as exc:  # never let the interrupt fail; the hooks still run
            self.state.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.state.seconds = time.monotonic() - self.received_at
            self.state.finished.set()

    def _cancel_all(self, deadline: float) -> None:
        for run_id, credentials in self.flow_runs().items():
            if run_id in self.before:
                continue
            left = left_by(self.journal, [run_id])
            if not left:
                continue
            with credentials.get_client(timeout=CANCEL_REQUEST_TIMEOUT, max_retries=0) as client:
                report = cancel_leftovers(
                    client,
                    left,
                    check_active=False,  # one DELETE each, no GET first: time matters here
                    deadline=deadline,
                    concurrency=CANCEL_CONCURRENCY,
                    log=_QUIET,
                )
            self.state.cancelled += report.cancelled
            self.state.recovered += report.recovered
            for generation_id, why in report.not_cancelled.items():
                self.state.not_cancelled[generation_id] = (
                    "no time left; the flow's hooks cancel it" if why.startswith("no time left") else why
                )

    def watch(self, reader: socket.socket, forward_to: int) -> None:
        """Watcher thread: read signal numbers from the wakeup socket; cancel on SIGINT or SIGTERM."""
        wanted = {int(signal.SIGINT), int(getattr(signal, "SIGTERM", signal.SIGINT))}
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            signals = data.replace(_STOP, b"")
            if forward_to != -1 and signals:  # the wakeup fd we replaced (an event loop's) still hears them
                with contextlib.suppress(OSError):
                    os.write(forward_to, signals)
            if not data or _STOP in data:
                return
            for signum in signals:
                if signum in wanted:
                    self.cancel(signum)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler (main thread): wait for the DELETEs, then raise KeyboardInterrupt."""
        if not self.handled:
            self.handled = True
            self.state.signal = self.state.signal or signum
            if not self.started.wait(0.5):  # no watcher, or it is slow to wake: send them from here
                self.cancel(signum)  # (returns at once if the watcher took them meanwhile)
            self.state.finished.wait(CANCEL_DEADLINE + CANCEL_REQUEST_TIMEOUT)
        raise KeyboardInterrupt  # a second signal while waiting lands here at once


def _interrupt_signals() -> list[signal.Signals]:
    return [signal.SIGINT, *([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])]


@contextlib.contextmanager
def cancel_first_on_interrupt(
    journal: Journal | None = None, flow_runs: FlowRuns = flow_runs_of_this_process
) -> Iterator[Interruption]:
    """While the block runs, SIGINT and SIGTERM cancel its flow runs' remote generations, then interrupt.

    The handlers (and the watcher thread) are removed when the block ends, and the previous
    handlers put back. Outside the main thread signals cannot be handled: the block then does
    nothing (the flows' hooks still cancel).

    Args:
        journal: The journal the flows write to (default: the default journal folder, as the flows).
        flow_runs: Returns the flow runs started in this process and their credentials (default:
            :func:`flow_runs_of_this_process`); those that exist when the block starts are left alone.

    Yields:
        An :class:`Interruption`, filled in when a signal comes.

    Raises:
        KeyboardInterrupt: On SIGINT or SIGTERM, after the DELETEs (or :data:`CANCEL_DEADLINE`).

    Example:
        >>> import tempfile
        >>> with cancel_first_on_interrupt(Journal(tempfile.mkdtemp())) as interrupt:
        ...     pass
        >>> interrupt.signal is None
        True
    """
    state = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    canceller = _Canceller(journal or Journal(), flow_runs, state)
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_fd = -1
    watcher: threading.Thread | None = None
    previous: dict[signal.Signals, Any] = {}
    try:
        for signum in _interrupt_signals():
            previous[signum] = signal.signal(signum, canceller.on_signal)
        try:
            previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError):  # no wakeup fd: the handler sends the DELETEs itself
            previous_fd = -2
        else:
            watcher = threading.Thread(
                target=canceller.watch, args=(reader, previous_fd), name="seedance-interrupt", daemon=True
            )
            watcher.start()
        yield state
    finally:
        if previous_fd != -2 and previous:
            with contextlib.suppress(ValueError, OSError):
                signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if canceller.started.is_set():  # the DELETEs must not be cut short by the process ending
            state.finished.wait(max(0.0, canceller.received_at + CANCEL_DEADLINE - time.monotonic()))
        with contextlib.suppress(OSError):
            writer.send(_STOP)
        if watcher is not None:
            watcher.join(1.0)
        reader.close()
        writer.close()
