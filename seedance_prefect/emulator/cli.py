"""Command line: ``python -m seedance_prefect.emulator`` (wired by the lead as ``seedance emulator``)."""

from __future__ import annotations

import argparse
import sys

from seedance_prefect.emulator.config import EmulatorConfig
from seedance_prefect.emulator.server import bind_socket, build_server, format_url


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the emulator CLI.

    Returns:
        The parser.

    Example:
        >>> build_parser().parse_args(["--latency", "0.5"]).latency
        0.5
    """
    p = argparse.ArgumentParser(
        prog="seedance emulator",
        description="Offline emulator of the Oxen.ai Seedance 2.0 API (real MP4s, fault injection).",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    p.add_argument(
        "--latency", type=float, default=2.0, metavar="SECONDS", help="processing time per generation"
    )
    p.add_argument(
        "--queue-delay", type=float, default=0.0, metavar="SECONDS", help="time spent queued first"
    )
    p.add_argument(
        "--faults", default=None, metavar="SPEC", help='e.g. "5xx=0.2,429=0.1,reset=0.05,poll429=1"'
    )
    p.add_argument("--api-key", default=None, metavar="KEY", help="accepted bearer token (default: any)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="fault RNG seed")
    p.add_argument(
        "--max-running", type=int, default=4, metavar="N", help="concurrently processing generations"
    )
    p.add_argument("--result-host", default=None, metavar="NAME", help="host name used in result URLs")
    p.add_argument("--keepalive", type=float, default=15.0, metavar="SECONDS", help="SSE keep-alive interval")
    p.add_argument("--first-status", choices=("queued", "processing"), default="queued")
    p.add_argument(
        "--profile", choices=("A", "B"), default="A", help="A = seed document, B = registry schema"
    )
    p.add_argument(
        "--auto-duration", type=int, default=5, metavar="SECONDS", help='seconds for duration "auto"'
    )
    p.add_argument(
        "--extra-fields", action="store_true", help="add unknown x_emulator fields to JSON answers"
    )
    p.add_argument(
        "--vanish-terminal",
        action="store_true",
        help="older queue: GET /ai/queue/{id} answers 404 once the generation ended (results via events)",
    )
    p.add_argument(
        "--no-history", dest="history", action="store_false", help="GET /ai/generations/{id} answers 404"
    )
    p.add_argument(
        "--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug")
    )
    return p


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """Build an ``EmulatorConfig`` from parsed arguments.

    Args:
        args: Result of ``build_parser().parse_args``.

    Returns:
        The config.

    Example:
        >>> config_from_args(build_parser().parse_args(["--profile", "B"])).profile
        'B'
        >>> cfg = config_from_args(build_parser().parse_args(["--vanish-terminal", "--no-history"]))
        >>> cfg.vanish_terminal, cfg.history
        (True, False)
    """
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        latency=args.latency,
        queue_delay=args.queue_delay,
        max_running=args.max_running,
        faults=args.faults,
        api_key=args.api_key,
        seed=args.seed,
        result_host=args.result_host,
        keepalive=args.keepalive,
        first_status=args.first_status,
        extra_fields=args.extra_fields,
        auto_duration=args.auto_duration,
        profile=args.profile,
        vanish_terminal=args.vanish_terminal,
        history=args.history,
        log_level=args.log_level,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the emulator in the foreground until Ctrl-C.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        Exit code: 0 after Ctrl-C, 2 for invalid settings.

    Example:
        From a shell (serves until Ctrl-C)::

            $ python -m seedance_prefect.emulator --port 8765 --latency 0.5
            Seedance emulator listening; export OXEN_BASE_URL=http://127.0.0.1:8765/api
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        sock = bind_socket(config.host, config.port)
    except OSError as exc:
        print(f"seedance emulator: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    server = build_server(config)
    print(f"Seedance emulator listening; export OXEN_BASE_URL={format_url(host, port)}/api", flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0
