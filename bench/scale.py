"""Scale: one big batch on the PostgreSQL stack, beside the same batch on the embedded SQLite server.

Issue 13: 1,000 rows of 2 s each (emulator latency) with limit 100, so the ideal wall time is
1000 * 2 / 100 = 20 s (``--quick``: 100 rows, limit 20, ideal 10 s). There is no goal: the
figures tell a user when to leave Prefect's embedded SQLite server for a Prefect server on
PostgreSQL. In the table, ``measured`` is the PostgreSQL stack and ``baseline`` the embedded
SQLite server, for the same batch on the same machine.

Each run starts its own emulator (``--latency 2 --max-running 150 --keepalive 5``, in its own
process) and writes a manifest of N distinct prompts (480p, ``duration`` "4", 16:9). The batch is
run as a user runs it: ``seedance batch MANIFEST --concurrency LIMIT --out OUT`` in a process of
its own (its own session and process group), with ``OXEN_API_KEY``/``OXEN_BASE_URL`` pointing at
the emulator and a fresh ``SEEDANCE_STATE_DIR``; its output goes to log files, not measured.

- **PostgreSQL stack** (``measured``): a private PostgreSQL 15 cluster and ``prefect server start``
  on it (:mod:`tests.stackkit`), started and healthy before the clock starts; the batch gets the
  server's client environment (``PREFECT_API_URL``).
- **embedded SQLite** (``baseline``): no ``PREFECT_API_URL`` and a fresh ``PREFECT_HOME``, so
  ``seedance batch`` starts Prefect's embedded server itself. In Prefect 3.9 that server
  (``SubprocessASGIServer``) is a *child process* of the ``seedance`` process (``python -m
  uvicorn ... prefect.server.api.server:create_app``), which creates the SQLite database and runs
  the migrations first; its start-up is inside the process's wall time.

What is measured, and how:

- **wall time**, two ways: the ``seedance batch`` process from ``Popen`` to exit (the flow as a
  user waits for it, start-up included), and the batch itself: from the first POST the emulator
  received (the first entry of the generations' history in ``/_emulator/stats``) to the last
  delivered video (the newest mtime among the ``.mp4`` files of the output folder). Each is also
  given as a multiple of the ideal.
- **Prefect server CPU seconds**: utime + stime from ``/proc/<pid>/stat`` (plus cutime + cstime,
  the children it reaped), summed over the server's processes. PostgreSQL stack: every process in
  the server's process group (``prefect server start`` runs in a session of its own), read just
  before ``Popen`` and just after the batch exits; PostgreSQL's own processes (the postmaster,
  found by its port, and its children, running as ``nobody``) are a separate figure, read the same
  way. Embedded SQLite: the server subprocess of the ``seedance`` process, sampled every 0.2 s
  (the last sample before it stops is kept: up to 0.2 s of its shutdown is not counted), split
  into start-up (until its ``/api/health`` first answers) and batch (after).
- **events ingested per second**: rows of the ``events`` table of the Prefect database stored by
  the run, divided by the time the flow process talked to an API (process wall time, minus the
  embedded server's start-up for SQLite). PostgreSQL: ``count(*)`` before the batch and after it,
  once the count stopped growing (the server's event persister writes in batches; up to 30 s of
  waiting). SQLite: ``count(*)`` of ``$PREFECT_HOME/prefect.db`` after the run (the embedded
  server stops with the process). The ``log`` table rows are given alongside.
- **peak RSS of the flow process** (the ``seedance batch`` process, its embedded server not
  included): VmHWM (the kernel's high-water mark) and VmRSS from ``/proc/<pid>/status``, read every
  0.2 s, the highest kept; on the PostgreSQL stack also ``ru_maxrss`` of ``wait4`` on it (it has no
  children there). For SQLite the embedded server's own peak is given too.
- **CPU of the flow process** (``wait4`` rusage of the ``seedance batch`` process, minus the last
  sample of its embedded server for SQLite), and the **CPU per row** of all Prefect parts (server
  after start-up, PostgreSQL, flow process): what bounds the throughput on a small machine.
- **machine load**: the mean of the 1-min load average sampled during the batch (this run's own
  processes included), to read the wall times against.
- **correctness**: rows delivered (the ``.mp4`` files in the output folder and the summary line),
  generations created at the emulator (== N: no row generated twice) and the most generations in
  flight at once (<= the limit).

The machine's cores are shared by the flow, the Prefect server, PostgreSQL and the emulator (and,
on a shared machine, whatever else runs), so wall/ideal well above 1 on 2 cores is a finding about
where the time goes, not a failure; figures move from run to run. A run that fails (rows failed, a
timeout, ``database is locked``) is reported in the table with log excerpts, not raised.

Run alone: ``python bench/scale.py [--quick] [--keep DIR]`` (prints the table; ``--keep`` leaves
the logs, manifests and outputs in DIR), or ``bench/run scale``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/scale.py``
    sys.path.insert(0, str(ROOT))

from bench._kit import manifest, seedance_command, start_emulator  # noqa: E402
from tests.stackkit import PrefectServer, clean_env, count_rows, free_port, postgres_cluster  # noqa: E402

LATENCY = 2.0
MAX_RUNNING = 150
EMULATOR = ("--latency", str(LATENCY), "--max-running", str(MAX_RUNNING), "--keepalive", "5")
API_KEY = "bench-key-for-the-local-emulator"
SAMPLE = 0.2  # seconds between samples of /proc
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = 1024
GOAL = "informational (measured: PostgreSQL stack; baseline: embedded SQLite)"


# --- /proc ---------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int, float, float] | None:
    """(ppid, pgrp, own CPU s, reaped children's CPU s) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = text.rpartition(")")[2].split()
    return int(f[1]), int(f[2]), (int(f[11]) + int(f[12])) / TICK, (int(f[13]) + int(f[14])) / TICK


def _processes() -> dict[int, tuple[int, int, float, float]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            out[int(entry)] = st
    return out


def _group_cpu(pgid: int) -> float:
    """CPU seconds of every live process in a process group, with the children they reaped."""
    return sum(own + kids for _, pgrp, own, kids in _processes().values() if pgrp == pgid)


def _tree_cpu(root: int) -> float:
    """CPU seconds of a process and its live descendants, with the children they reaped."""
    procs = _processes()
    todo, seen, total = [root], set(), 0.0
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in procs:
            continue
        seen.add(pid)
        total += procs[pid][2] + procs[pid][3]
        todo += [p for p, st in procs.items() if st[0] == pid]
    return total


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _postmaster(port: int) -> int | None:
    """The pid of the PostgreSQL postmaster listening on ``port``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = _cmdline(int(entry))
        if argv and Path(argv[0]).name == "postgres" and "-p" in argv:
            i = argv.index("-p")
            if i + 1 < len(argv) and argv[i + 1] == str(port):
                return int(entry)
    return None


def _memory_kb(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) in KiB; (0, 0) when the process is gone."""
    hwm = rss = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return hwm, rss


# --- the emulator, the manifest, the batch -------------------------------------------------------


def _embedded_server(pid: int) -> tuple[int, int] | None:
    """(pid, port) of the embedded Prefect server a ``seedance`` process started, if any yet."""
    for child, st in _processes().items():
        if st[0] != pid:
            continue
        argv = _cmdline(child)
        if "uvicorn" in argv and "--port" in argv:
            return child, int(argv[argv.index("--port") + 1])
    return None


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _run_batch(
    folder: Path, env: dict[str, str], rows: int, limit: int, timeout: float, embedded: bool
) -> dict[str, Any]:
    """Run ``seedance batch`` once; sample its process (and embedded server) until it exits."""
    path, out = folder / "batch.jsonl", folder / "out"
    path.write_text(manifest(rows, "clip-{i:04d}", "A paper boat on a pond, take {i}", seed=7))
    cmd = [*seedance_command(), "batch", str(path), "--concurrency", str(limit), "--out", str(out)]
    stdout, stderr = (folder / "seedance.out").open("wb"), (folder / "seedance.err").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=folder, stdout=stdout, stderr=stderr, start_new_session=True)
    m: dict[str, Any] = {"hwm_kb": 0, "rss_kb": 0, "server_hwm_kb": 0, "server_cpu": 0.0}
    loads: list[float] = []
    server: tuple[int, int] | None = None
    server_up_at: float | None = None
    server_cpu_at_up = 0.0
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        hwm, rss = _memory_kb(proc.pid)
        m["hwm_kb"], m["rss_kb"] = max(m["hwm_kb"], hwm), max(m["rss_kb"], rss)
        loads.append(os.getloadavg()[0])
        if embedded:
            server = server or _embedded_server(proc.pid)
            if server and (st := _stat(server[0])) is not None:
                m["server_cpu"] = st[2] + st[3]
                m["server_hwm_kb"] = max(m["server_hwm_kb"], _memory_kb(server[0])[0])
                if server_up_at is None and _healthy(server[1]):
                    server_up_at, server_cpu_at_up = time.monotonic() - started, m["server_cpu"]
        if time.monotonic() - started > timeout and not timed_out:
            timed_out = True  # Ctrl-C, as a user would; the kill follows if it does not stop
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
        if time.monotonic() - started > timeout + 60:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(SAMPLE)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 above
    stdout.close()
    stderr.close()
    with contextlib.suppress(ProcessLookupError):  # anything left in its group (none expected)
        os.killpg(proc.pid, signal.SIGKILL)
    m.update(
        wall=wall,
        exit_code=proc.returncode,
        timed_out=timed_out,
        cpu_total=usage.ru_utime + usage.ru_stime,  # the flow process and the children it reaped
        ru_maxrss_kb=usage.ru_maxrss,
        load=sum(loads) / len(loads) if loads else os.getloadavg()[0],
        out=out,
    )
    if embedded:
        m["server_startup"] = server_up_at
        m["server_startup_cpu"] = server_cpu_at_up
        m["server_batch_cpu"] = m["server_cpu"] - server_cpu_at_up
    return m


def _deliveries(out: Path) -> tuple[int, float | None]:
    """(number of delivered .mp4 files, newest mtime) in the output folder (not work folders)."""
    videos = [p for p in out.glob("*.mp4")] if out.is_dir() else []
    return len(videos), max((p.stat().st_mtime for p in videos), default=None)


def _summary(folder: Path) -> dict[str, Any]:
    """The summary line, failed rows and telling log lines of the ``seedance batch`` output."""
    text = (folder / "seedance.out").read_text(errors="replace")
    err = (folder / "seedance.err").read_text(errors="replace")
    line = next((ln for ln in reversed(text.splitlines()) if ln.startswith("Delivered ")), "")
    failed = [ln for ln in text.splitlines() if len(ln.split()) > 2 and ln.split()[2] == "failed"]
    telling = [
        ln
        for ln in (text + "\n" + err).splitlines()
        if re.search(r"database is locked|Traceback|Error|error:|Crashed|timed out", ln)
    ]
    match = re.search(r"\((\d+) delivered, (\d+) copied, (\d+) already there, (\d+) failed", line)
    return {
        "line": line,
        "failed_rows": len(failed),
        "failed_examples": failed[:3],
        "locked": (text + err).count("database is locked"),
        "telling": telling[:8],
        "summary_delivered": int(match.group(1)) if match else None,
        "summary_failed": int(match.group(4)) if match else None,
        "stderr_tail": err[-1500:],
    }


def _emulator_figures(port: int) -> dict[str, Any]:
    stats = httpx.get(f"http://127.0.0.1:{port}/_emulator/stats", timeout=60).json()
    firsts = [g["history"][0]["at"] for g in stats["generations"].values() if g.get("history")]
    return {
        "created": stats["generations_created"],
        "max_in_flight": stats["max_in_flight"],
        "first_post": min(firsts, default=None),
        "statuses": {k: v for k, v in stats["statuses"].items() if v},
    }


def _settled_count(db: str, table: str, wait: float = 30.0) -> tuple[int, float]:
    """A table's row count once it stopped growing (two equal reads 1 s apart); and the wait."""
    started, last = time.monotonic(), count_rows(db, table)
    while time.monotonic() - started < wait:
        time.sleep(1)
        now = count_rows(db, table)
        if now == last:
            break
        last = now
    return last, time.monotonic() - started


def _sqlite_count(path: Path, table: str) -> int | None:
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _finish(m: dict[str, Any], folder: Path, port: int, rows: int) -> dict[str, Any]:
    """Add what the output folder, the summary and the emulator say about a finished run."""
    m.update(_summary(folder))
    m["delivered"], last_delivery = _deliveries(m.pop("out"))
    m.update(_emulator_figures(port))
    if m["first_post"] is not None and last_delivery is not None:
        m["batch_wall"] = last_delivery - m["first_post"]
    m["rows"] = rows
    return m


def run_postgres(base: Path, rows: int, limit: int, timeout: float) -> dict[str, Any]:
    """The batch on ``prefect server start`` over PostgreSQL (a private cluster)."""
    folder = base / "postgres"
    folder.mkdir(parents=True)
    port = free_port()
    emulator = start_emulator(port, *EMULATOR, env=clean_env())
    try:
        with postgres_cluster() as db, PrefectServer(db, folder / "server") as server:
            assert server.proc is not None
            pg_port = int(db.rsplit(":", 1)[1].split("/")[0])
            postmaster = _postmaster(pg_port)
            events_before, logs_before = count_rows(db, "events"), count_rows(db, '"log"')
            env = server.client_env(
                OXEN_API_KEY=API_KEY,
                OXEN_BASE_URL=f"http://127.0.0.1:{port}/api",
                SEEDANCE_STATE_DIR=str(folder / "state"),
            )
            server_cpu0 = _group_cpu(server.proc.pid)
            pg_cpu0 = _tree_cpu(postmaster) if postmaster else None
            m = _run_batch(folder, env, rows, limit, timeout, embedded=False)
            m["server_batch_cpu"] = _group_cpu(server.proc.pid) - server_cpu0
            m["pg_cpu"] = _tree_cpu(postmaster) - pg_cpu0 if postmaster and pg_cpu0 is not None else None
            events_after, m["events_wait"] = _settled_count(db, "events")
            m["events"] = events_after - events_before
            m["logs"] = count_rows(db, '"log"') - logs_before
            m["api_seconds"] = m["wall"]
            m["flow_cpu"] = m["cpu_total"]
            return _finish(m, folder, port, rows)
    finally:
        emulator.terminate()
        emulator.wait(10)


def run_sqlite(base: Path, rows: int, limit: int, timeout: float) -> dict[str, Any]:
    """The batch on the embedded server ``seedance batch`` starts on a fresh SQLite home."""
    folder = base / "sqlite"
    folder.mkdir(parents=True)
    home = folder / "prefect-home"
    port = free_port()
    emulator = start_emulator(port, *EMULATOR, env=clean_env())
    try:
        env = clean_env(
            PREFECT_HOME=str(home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            OXEN_API_KEY=API_KEY,
            OXEN_BASE_URL=f"http://127.0.0.1:{port}/api",
            SEEDANCE_STATE_DIR=str(folder / "state"),
        )
        m = _run_batch(folder, env, rows, limit, timeout, embedded=True)
        m["events"] = _sqlite_count(home / "prefect.db", "events")
        m["logs"] = _sqlite_count(home / "prefect.db", '"log"')
        m["api_seconds"] = m["wall"] - (m["server_startup"] or 0.0)
        m["flow_cpu"] = m["cpu_total"] - m["server_cpu"]  # wait4 counts the server it reaped
        return _finish(m, folder, port, rows)
    finally:
        emulator.terminate()
        emulator.wait(10)


# --- the table -----------------------------------------------------------------------------------


def _mib(kb: float | None) -> str:
    return f"{kb / 1024:.0f} MiB" if kb else "n/a"


def _cells(m: dict[str, Any] | None, error: str | None, ideal: float, limit: int) -> dict[str, str]:
    """The text of each metric for one run (or its error)."""
    if m is None:
        keys = ("wall", "process", "cpu", "events", "rss", "flow_cpu", "per_row", "load", "rows")
        return dict.fromkeys(keys, f"error: {error}")
    batch = m.get("batch_wall")
    startup = m.get("server_startup")
    cells = {
        "wall": f"{batch:.1f} s ({batch / ideal:.2f}x)" if batch else "n/a (nothing delivered)",
        "process": f"{m['wall']:.1f} s ({m['wall'] / ideal:.2f}x)"
        + (f", of which {startup:.1f} s embedded server start-up" if startup else ""),
    }
    if "pg_cpu" in m:
        pg = f"{m['pg_cpu']:.1f} s" if m["pg_cpu"] is not None else "n/a (postmaster not found)"
        cells["cpu"] = f"{m['server_batch_cpu']:.1f} s server + {pg} PostgreSQL"
    else:
        cells["cpu"] = (
            f"{m['server_batch_cpu']:.1f} s after start-up (+ {m['server_startup_cpu']:.1f} s start-up: "
            "database creation and migrations)"
        )
    events = m.get("events")
    cells["events"] = (
        f"{events / m['api_seconds']:.0f}/s ({events} events in {m['api_seconds']:.1f} s; "
        f"{m['logs']} log rows)"
        if events is not None and m["api_seconds"] > 0
        else "n/a (no database)"
    )
    rss = f"{_mib(m['hwm_kb'])} (VmHWM; VmRSS max {_mib(m['rss_kb'])}"
    if "pg_cpu" in m:
        rss += f"; ru_maxrss {_mib(m['ru_maxrss_kb'])})"
    else:
        rss += f"); embedded server {_mib(m['server_hwm_kb'])}"
    cells["rss"] = rss
    cells["flow_cpu"] = f"{m['flow_cpu']:.1f} s"
    prefect_cpu = m["server_batch_cpu"] + (m.get("pg_cpu") or 0.0) + m["flow_cpu"]
    cells["per_row"] = f"{1000 * prefect_cpu / m['rows']:.0f} ms ({prefect_cpu:.1f} s)"
    cells["load"] = f"{m['load']:.1f} on {os.cpu_count()} CPUs"
    failed = m["summary_failed"] if m["summary_failed"] is not None else m["failed_rows"]
    text = (
        f"{m['delivered']}/{m['rows']} delivered, {failed} failed, {m['created']} created, "
        f"max {m['max_in_flight']} in flight (limit {limit}); exit code {m['exit_code']}"
    )
    if m["timed_out"]:
        text += "; TIMED OUT"
    if m["locked"]:
        text += f"; 'database is locked' x{m['locked']}"
    cells["rows"] = text
    return cells


def _correct(m: dict[str, Any] | None, limit: int) -> bool:
    return bool(
        m
        and m["delivered"] == m["rows"]
        and m["created"] == m["rows"]
        and m["max_in_flight"] <= limit
        and m["exit_code"] == 0
    )


def main(quick: bool = False, keep: Path | None = None) -> list[dict[str, str]]:
    """Run the batch on both stacks; return rows of the results table."""
    rows, limit = (100, 20) if quick else (1000, 100)
    timeout = 600.0 if quick else 1800.0
    ideal = rows * LATENCY / limit
    base = Path(tempfile.mkdtemp(prefix="seedance-scale-")) if keep is None else keep
    base.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any] | None] = {}
    errors: dict[str, str] = {}
    try:
        for name, run in (("postgres", run_postgres), ("sqlite", run_sqlite)):
            print(f"scale: {rows} rows, limit {limit}, on {name}...", file=sys.stderr, flush=True)
            try:
                results[name] = run(base, rows, limit, timeout)
            except Exception as exc:  # a stack that cannot start is a row of the table, not a crash
                results[name], errors[name] = None, f"{type(exc).__name__}: {exc}"[:300]
            m = results[name]
            if m is not None:
                brief = {k: v for k, v in m.items() if k != "stderr_tail"}
                print(json.dumps(brief, default=str), file=sys.stderr, flush=True)
                if not _correct(m, limit):
                    print(f"scale: {name} stderr tail:\n{m['stderr_tail']}", file=sys.stderr, flush=True)
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
    pg = _cells(results["postgres"], errors.get("postgres"), ideal, limit)
    lite = _cells(results["sqlite"], errors.get("sqlite"), ideal, limit)
    what = f"{rows} rows x {LATENCY:g} s, limit {limit} (ideal {ideal:g} s)"
    metrics = [
        ("wall", f"{what}: wall time, first POST to last delivery (x ideal)"),
        ("process", f"{what}: wall time of the `seedance batch` process, start to exit (x ideal)"),
        ("cpu", "Prefect server CPU seconds during the batch"),
        ("events", "events ingested per second (events table rows / time the flow used the API)"),
        ("rss", "peak RSS of the flow process (`seedance batch`)"),
        ("flow_cpu", "CPU seconds of the flow process (`seedance batch`, its server excluded)"),
        ("per_row", "CPU per row: server (after start-up) + PostgreSQL + flow process"),
        ("load", "machine load: mean 1-min load average during the batch (this run's processes included)"),
        ("rows", "rows delivered, generations created, most in flight"),
    ]
    table = [
        {"metric": text, "goal": GOAL, "measured": pg[key], "baseline": lite[key]} for key, text in metrics
    ]
    both = _correct(results["postgres"], limit) and _correct(results["sqlite"], limit)
    table[-1]["ok"] = "yes" if both else "no (see measured / baseline)"
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 rows, limit 20")
    parser.add_argument("--keep", type=Path, help="keep logs, manifests and outputs in this folder")
    args = parser.parse_args()
    print("| metric | goal | measured | baseline | ok |\n|---|---|---|---|---|")
    for row in main(args.quick, args.keep):
        cells = (row["metric"], row["goal"], row["measured"], row["baseline"], row.get("ok", ""))
        print("| " + " | ".join(cells) + " |")
