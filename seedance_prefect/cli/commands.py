"""The ``generate`` and ``batch`` commands: run a flow in this process and print what it delivered.

- :func:`run_generate` runs ``reference_to_video``; :func:`run_batch` runs the batch flow after
  reading the manifest, the journal and the budget before Prefect starts (bad input fails in a
  second); :func:`format_summary` prints a batch's summary.
- While a flow runs, Ctrl-C and SIGTERM first cancel its remote generations, then interrupt
  (:mod:`seedance_prefect.cli.interrupt`); Prefect runs with the environment of
  :mod:`seedance_prefect.cli.prefect_env`.

The old module path ``seedance_prefect.runtime`` (before the ``cli`` package) is this module, with
a :class:`DeprecationWarning` (``seedance_prefect._compat``). The names it had that now live in
:mod:`.prefect_env` and :mod:`.demo` are re-exported here for it (``runtime.local_flow_settings``,
``runtime.run_demo``...); import them from their new modules. Nothing here imports Prefect until
a command runs.

Example:
    >>> from seedance_prefect.cli.commands import run_generate
    >>> run_generate.__module__
    'seedance_prefect.cli.commands'
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..settings import DEFAULT_SAFETY_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS
from .demo import DEMO_PROMPT as DEMO_PROMPT  # re-exported for seedance_prefect.runtime
from .demo import make_demo_request as make_demo_request  # re-exported for seedance_prefect.runtime
from .demo import run_demo as run_demo  # re-exported for seedance_prefect.runtime
from .interrupt import cancel_first_on_interrupt
from .main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from .prefect_env import HEARTBEAT_SETTINGS as HEARTBEAT_SETTINGS  # re-exported for seedance_prefect.runtime
from .prefect_env import PREFECT_DEFAULTS as PREFECT_DEFAULTS  # re-exported for seedance_prefect.runtime
from .prefect_env import apply_prefect_defaults, local_flow_settings

__all__ = ["format_summary", "run_batch", "run_generate"]


@contextlib.contextmanager
def _interruptible(state: str | None = None) -> Iterator[None]:
    """Ctrl-C and SIGTERM cancel the command's remote generations first, then say so and interrupt.

    ``state`` names the journal's store (``--state``); a bad value is an InvalidRequest, raised here.
    """
    from ..generation.journal import Journal

    with cancel_first_on_interrupt(Journal.at(state) if state is not None else None) as interrupt:
        try:
            yield
        except KeyboardInterrupt:
            message = interrupt.describe()
            if message:
                print(message, file=sys.stderr)
            raise


def _print_deliveries(deliveries: list[dict[str, Any]]) -> None:
    for d in deliveries:
        probe: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            probe = json.loads(Path(d["sidecar"]).read_text()).get("probe", {})
        shape = ""
        if probe:
            audio = "with audio" if probe.get("has_audio") else "no audio"
            shape = (
                f" ({probe.get('width')}x{probe.get('height')}, {probe.get('duration', 0):.1f} s, {audio})"
            )
        print(f"Delivered {d['video']}{shape}")
        print(f"  sidecar {d['sidecar']}  sha256 {d['sha256']}")


def run_generate(
    request: Any,
    *,
    output: Path,
    sync: bool = False,
    new: bool = False,
    run_key: str | None = None,
    name: str | None = None,
    credentials: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    poll_interval: float = DEFAULT_SAFETY_POLL_INTERVAL,
    deliver_to: str | None = None,
    hosting: str | None = None,
    repository: str | None = None,
    state: str | None = None,
) -> int:
    """Run the ``reference_to_video`` flow for the CLI and return its exit code.

    Args:
        request: The validated request (or its dict).
        output: Output folder (work files, and the delivery folder without ``deliver_to``).
        sync: Use the synchronous endpoint.
        new: Force a fresh generation instead of reattaching to an earlier one.
        run_key: Extra key that makes this run distinct from equal requests.
        name: Base name of the delivered files.
        credentials: A saved ``OxenCredentials`` block's name (None: the environment).
        timeout: Seconds to wait for each generation.
        poll_interval: Seconds between fallback polls.
        deliver_to: Deliver to this fsspec URL or saved block instead of ``output``.
        hosting: How local references reach the service (``data``, ``oxen``, ``s3-bucket/NAME``).
        repository: Oxen repository for ``oxen`` hosting.
        state: Where the journal lives (``s3://bucket/prefix/``, ``s3-bucket/NAME`` or a folder);
            None: ``$SEEDANCE_STATE``, else ``$SEEDANCE_STATE_DIR`` or ``~/.seedance``.

    Returns:
        0 delivered, 1 generation/download/verification/delivery failed, 2 invalid input.

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM, after the remote generations were cancelled.

    Example:
        ```python
        code = run_generate({"prompt": "A kite over the dunes", "duration": "4"}, output=Path("videos"))
        ```
    """
    apply_prefect_defaults()
    with _interruptible(state):
        from ..credentials import resolve_credentials
        from ..errors import AuthenticationError, InvalidRequest, SeedanceError

        try:  # a missing key is bad input: say so before starting Prefect
            resolve_credentials(credentials)
        except AuthenticationError as exc:
            print(f"error: {exc.detail}", file=sys.stderr)
            return EXIT_BAD_INPUT
        from ..flows import reference_to_video

        try:
            with local_flow_settings():
                deliveries = reference_to_video(
                    request,
                    credentials=credentials,
                    output=str(output),
                    sync=sync,
                    name=name,
                    run_key=run_key,
                    new=new,
                    timeout_seconds=timeout,
                    poll_interval=poll_interval,
                    deliver_to=deliver_to,
                    hosting=hosting,
                    repository=repository,
                    state=state,
                )
        except InvalidRequest as exc:
            for problem in exc.problems:
                print(f"error: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except SeedanceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
    _print_deliveries(deliveries)
    return EXIT_OK


def run_batch(
    manifest: str,
    *,
    output: Path,
    deliver_to: str | None = None,
    concurrency: int | None = None,
    credentials: str | None = None,
    run_key: str | None = None,
    budget_usd: float | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    poll_interval: float = DEFAULT_SAFETY_POLL_INTERVAL,
    limit_name: str | None = None,
    state: str | None = None,
    allow_local_references: bool = False,
) -> int:
    """Run the ``batch_reference_to_video`` flow for the CLI, print its summary, return the exit code.

    The manifest is read and checked, and the budget applied to the rows still to run
    (:func:`seedance_prefect.batch.todo.select_rows`, the flow's own filter), before Prefect
    starts, so bad input fails in a second; bad rows are reported (line, name, problems) and skipped.

    Args:
        manifest: A JSONL or CSV manifest: a path or an fsspec URL.
        output: Output folder (work files, and the delivery folder without ``deliver_to``).
        deliver_to: Deliver to this fsspec URL or saved block instead of ``output``.
        concurrency: Generations in flight at most (sets the global concurrency limit).
        credentials: A saved ``OxenCredentials`` block's name (None: the environment).
        run_key: Batch-wide extra key: a new key generates every row again.
        budget_usd: Refuse to start when the rows to run are estimated above it.
        timeout: Seconds to wait for each generation.
        poll_interval: Seconds between fallback polls.
        limit_name: Name of the global concurrency limit (default ``seedance-generations``).
        state: Where the journal lives (as for :func:`run_generate`).
        allow_local_references: Let a manifest read from a URL name local files.

    Returns:
        0 every row delivered, 1 some rows invalid or failed (the rest delivered), 2 nothing run
        (unreadable manifest, no valid row, over budget, missing key, bad target).

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM, after the remote generations were cancelled.

    Example:
        ```python
        code = run_batch("requests.jsonl", output=Path("videos"), concurrency=8, budget_usd=50)
        ```
    """
    apply_prefect_defaults()
    with _interruptible(state):
        from ..batch.manifest import plan_batch, read_manifest
        from ..batch.todo import select_rows
        from ..credentials import resolve_credentials
        from ..errors import AuthenticationError, BudgetExceeded, InvalidRequest, SeedanceError
        from ..generation.journal import Journal

        try:
            resolve_credentials(credentials)
            rows, base_dir = read_manifest(manifest, allow_local_references=allow_local_references)
            plan = plan_batch(rows, base_dir=base_dir, run_key=run_key)
            for bad in plan.rejected:
                print(f"invalid row: {bad}", file=sys.stderr)
            if not plan.rows:
                print("error: no valid row in the manifest; nothing was sent", file=sys.stderr)
                return EXIT_BAD_INPUT
            todo = select_rows(plan.rows, Journal.at(state), budget_usd=budget_usd)
        except AuthenticationError as exc:
            print(f"error: {exc.detail}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except InvalidRequest as exc:
            for problem in exc.problems:
                print(f"error: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except BudgetExceeded as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        earlier = f", {len(todo.delivered)} delivered by an earlier run" if todo.delivered else ""
        waiting = f"{len(todo.to_run)} of {len(plan.rows)} valid rows to generate{earlier}; starting Prefect"
        print(waiting, file=sys.stderr)
        from ..batch_flows import BatchFailed, batch_reference_to_video
        from ..slots import DEFAULT_LIMIT_NAME

        code = EXIT_OK
        try:
            with local_flow_settings():
                result = batch_reference_to_video(
                    manifest,
                    output=str(output),
                    deliver_to=deliver_to,
                    concurrency=concurrency,
                    credentials=credentials,
                    run_key=run_key,
                    budget_usd=budget_usd,
                    timeout_seconds=timeout,
                    poll_interval=poll_interval,
                    limit_name=limit_name or DEFAULT_LIMIT_NAME,
                    state=state,
                    allow_local_references=allow_local_references,
                )
        except BatchFailed as exc:
            result, code = exc.summary, EXIT_FAILED
        except (InvalidRequest, BudgetExceeded) as exc:
            problems = getattr(exc, "problems", None) or [exc]
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except SeedanceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
    print(format_summary(result))
    return code


#: How the summary table shows a row's ``status`` (the value itself stays, for those who parse it).
_STATUS_LABELS = {"skipped": "already there"}


def format_summary(result: dict[str, Any]) -> str:
    """Return a batch summary (``{"rows": [...], "totals": {...}}``) as a terminal table.

    The status column is the row's ``status``, but ``skipped`` reads ``already there`` (delivered
    to this target by an earlier run); ``copied`` rows were delivered by an earlier run elsewhere
    and copied (or downloaded again) now, with no new generation. The last line counts the rows
    that are in the target now, split by how; its videos, seconds and cost are the new generations'.

    Args:
        result: What ``batch_reference_to_video`` returned (or ``BatchFailed.summary``).

    Returns:
        One line per row, then a line of totals.

    Example:
        >>> lines = format_summary({"rows": [{"line": 2, "name": "boat", "status": "delivered",
        ...     "generation": "g1", "seconds": 5.0, "cost_usd": 2.0, "video": "out/boat.mp4", "error": ""},
        ...     {"line": 3, "name": "cat", "status": "skipped", "generation": "g2", "video": "out/cat.mp4"}],
        ...     "totals": {"rows": 2, "delivered": 1, "copied": 0, "skipped": 1, "failed": 0, "invalid": 0,
        ...     "generations": 1, "seconds": 5.0, "cost_usd": 2.0, "wall_seconds": 9.5}}).splitlines()
        >>> print("\\n".join(lines[:-1]))
        line  name  status         generation  seconds  cost   video / error
        2     boat  delivered      g1          5        $2.00  out/boat.mp4
        3     cat   already there  g2          0        $0.00  out/cat.mp4
        >>> print(lines[-1].replace(": ", ":\\n", 1))  # one line, cut in two here
        Delivered 2 of 2 rows (1 delivered, 0 copied, 1 already there, 0 failed, 0 invalid):
        1 new videos, 5 s, estimated $2.00, in 9.5 s
    """
    header = ("line", "name", "status", "generation", "seconds", "cost", "video / error")
    table = [header]
    for row in result.get("rows", []):
        detail = row.get("error") or row.get("video") or ""
        table.append(
            (
                str(row.get("line", "")),
                str(row.get("name", ""))[:40],
                _STATUS_LABELS.get(str(row.get("status", "")), str(row.get("status", ""))),
                str(row.get("generation", ""))[:36],
                f"{float(row.get('seconds') or 0):g}",
                f"${float(row.get('cost_usd') or 0):.2f}",
                str(detail)[:160],
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip() for r in table
    ]
    t = result.get("totals", {})
    delivered, copied, there = (int(t.get(k, 0)) for k in ("delivered", "copied", "skipped"))
    lines.append(
        f"Delivered {delivered + copied + there} of {t.get('rows', 0)} rows "
        f"({delivered} delivered, {copied} copied, {there} already there, "
        f"{t.get('failed', 0)} failed, {t.get('invalid', 0)} invalid): "
        f"{t.get('generations', 0)} new videos, {t.get('seconds', 0):g} s, "
        f"estimated ${t.get('cost_usd', 0):.2f}, in {t.get('wall_seconds', 0):g} s"
    )
    return "\n".join(lines)
