"""The ``seedance`` command: plan, generate, batch, emulator, demo.

Exit codes: 0 success, 1 failed work (generation, download, verification or delivery), 2 bad input
or bad usage. Errors print one clear message, never a traceback. ``seedance plan`` imports neither
Prefect nor httpx, so it answers in well under a second and makes no network call.

Example:
    ```bash
    seedance plan request.json          # validate, show the body and the estimated cost
    seedance generate request.json --out ./videos
    seedance batch requests.jsonl --deliver-to s3://bucket/videos/ --concurrency 8
    seedance demo                       # everything offline: emulator + embedded Prefect server
    ```
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidRequest, SeedanceError
from ..settings import DEFAULT_TIMEOUT_SECONDS

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with 2 and a one-line hint."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


_STATE_HELP = (
    "where the journal lives, shared by machines that name the same store: s3://bucket/prefix/, "
    "s3-bucket/BLOCK_NAME or a folder (default $SEEDANCE_STATE, else $SEEDANCE_STATE_DIR or ~/.seedance)"
)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="seedance",
        description="Seedance 2.0 reference-to-video on the Oxen.ai API, orchestrated by Prefect.",
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"seedance-prefect {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    plan = sub.add_parser("plan", help="validate a request file and show what would be sent (no network)")
    plan.add_argument("request", type=Path, help="JSON file with the API body keys")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("--sync", action="store_true", help="plan for the synchronous endpoint")

    gen = sub.add_parser("generate", help="generate, verify and deliver the video(s) of a request file")
    gen.add_argument("request", type=Path, help="JSON file with the API body keys")
    gen.add_argument("--out", type=Path, default=Path("seedance-output"), help="output folder")
    gen.add_argument("--sync", action="store_true", help="use the synchronous endpoint instead of the queue")
    gen.add_argument("--new", action="store_true", help="force a fresh generation (do not reattach)")
    gen.add_argument("--run-key", default=None, help="extra key that makes this run distinct from others")
    gen.add_argument("--name", default=None, help="base name of the delivered files")
    gen.add_argument("--credentials", default=None, metavar="BLOCK_NAME", help="saved OxenCredentials block")
    gen.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait for the generation"
    )
    gen.add_argument(
        "--deliver-to",
        default=None,
        metavar="TARGET",
        help="deliver to an fsspec URL (s3://bucket/prefix/) or a saved block (s3-bucket/NAME), not --out",
    )
    gen.add_argument(
        "--hosting",
        default=None,
        metavar="HOW",
        help='how local references reach the service: "data", "oxen" or "s3-bucket/BLOCK_NAME"',
    )
    gen.add_argument("--repository", default=None, metavar="NS/NAME", help="Oxen repository for hosting")
    gen.add_argument("--state", default=None, metavar="STORE", help=_STATE_HELP)

    batch = sub.add_parser("batch", help="generate every request of a JSONL or CSV manifest, N at a time")
    batch.add_argument(
        "manifest", help="JSONL or CSV manifest: a path, or a URL such as s3://bucket/batch.jsonl"
    )
    where = batch.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=None, help="output folder (default ./seedance-output)")
    where.add_argument(
        "--deliver-to", default=None, metavar="TARGET", help="fsspec URL (s3://bucket/prefix/) or saved block"
    )
    batch.add_argument(
        "--concurrency", type=_positive_int, default=None, metavar="N", help="generations in flight at most"
    )
    batch.add_argument(
        "--budget-usd", type=float, default=None, metavar="USD", help="refuse to start above it"
    )
    batch.add_argument("--run-key", default=None, help="extra key: a new key generates every row again")
    batch.add_argument(
        "--credentials", default=None, metavar="BLOCK_NAME", help="saved OxenCredentials block"
    )
    batch.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait for each generation"
    )
    batch.add_argument("--limit-name", default=None, help="global concurrency limit (seedance-generations)")
    batch.add_argument("--state", default=None, metavar="STORE", help=_STATE_HELP)
    batch.add_argument(
        "--allow-local-references",
        action="store_true",
        help="let a manifest read from a URL name this machine's files (refused by default)",
    )

    sub.add_parser("emulator", help="run the offline Oxen API emulator (see `seedance emulator --help`)")

    demo = sub.add_parser("demo", help="run the whole job offline: emulator + embedded Prefect server")
    demo.add_argument("--out", type=Path, default=Path("seedance-output"), help="output folder")
    return parser


def _plan(args: argparse.Namespace) -> int:
    from ..preflight.check import check_request, load_request_file

    data, base_dir = load_request_file(args.request)
    report = check_request(data, endpoint="sync" if args.sync else "queue", base_dir=base_dir)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return EXIT_OK if report.ok else EXIT_BAD_INPUT
    _print_problems(report.errors, report.warnings)
    if report.planned:
        print(f"Planned fixes ({len(report.planned)}), made locally before sending:")
        for fix in report.planned:
            print(f"  - {fix.field} ({fix.file}): {fix.what}: {fix.before} -> {fix.after}")
            print(f"      why: {fix.why}")
    if not report.ok:
        return EXIT_BAD_INPUT
    endpoint = "POST /ai/videos/generate" if args.sync else "POST /ai/queue"
    print(f"Request is valid. It would be sent as {endpoint} with this body:")
    print(json.dumps(report.body(), indent=2))
    if report.cost is not None:
        print(f"Estimated cost: {report.cost}")
    return EXIT_OK


def _print_problems(errors: Sequence[Any], warnings: Sequence[Any]) -> None:
    for problem in errors:
        print(f"error: {problem}", file=sys.stderr)
    for problem in warnings:
        print(f"warning: {problem}", file=sys.stderr)


def _generate(args: argparse.Namespace) -> int:
    from ..preflight.check import load_request_file, validate_request

    data, base_dir = load_request_file(args.request)
    request = validate_request(data, endpoint="sync" if args.sync else "queue", base_dir=base_dir)
    from .commands import run_generate

    return run_generate(
        request,
        output=args.out,
        sync=args.sync,
        new=args.new,
        run_key=args.run_key,
        name=args.name,
        credentials=args.credentials,
        timeout=args.timeout,
        deliver_to=args.deliver_to,
        hosting=args.hosting,
        repository=args.repository,
        state=args.state,
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _batch(args: argparse.Namespace) -> int:
    from .commands import run_batch

    return run_batch(
        args.manifest,
        output=args.out or Path("seedance-output"),
        deliver_to=args.deliver_to,
        concurrency=args.concurrency,
        credentials=args.credentials,
        run_key=args.run_key,
        budget_usd=args.budget_usd,
        timeout=args.timeout,
        limit_name=args.limit_name,
        state=args.state,
        allow_local_references=args.allow_local_references,
    )


def _demo(args: argparse.Namespace) -> int:
    from .commands import run_demo

    return run_demo(output=args.out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``seedance`` command.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The exit code: 0 success, 1 failed work, 2 bad input.

    Example:
        >>> main(["plan", "does-not-exist.json"])
        2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:  # the emulator parses its own options (and its own --help)
        from ..emulator.cli import main as emulator_main

        return emulator_main(argv[1:])
    parser = _build_parser()
    args = parser.parse_args(argv)
    handlers = {"plan": _plan, "generate": _generate, "batch": _batch, "demo": _demo}
    handler = handlers.get(args.command or "")
    if handler is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return handler(args)
    except InvalidRequest as exc:
        _print_problems(exc.problems, exc.warnings)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except SeedanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
