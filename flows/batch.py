"""Deployable batch pipeline: every request of a manifest (local or in storage), N at a time.

Serve it with a schedule (one long-running process that runs the scheduled and triggered runs and
handles cancellation), e.g. every night at 03:00 from a manifest in S3 to an ``S3Bucket`` block:

    python flows/batch.py --name nightly --cron "0 3 * * *" \\
        --manifest s3://my-bucket/manifests/nightly.jsonl --deliver-to s3-bucket/videos --concurrency 8

or deploy it to a process work pool with ``prefect deploy`` (``flows/prefect.yaml``) and start
workers (``docs/deployment.md``).
"""

from __future__ import annotations

import argparse

from seedance_prefect.batch_flows import batch_reference_to_video

__all__ = ["batch_reference_to_video", "main"]


def main(argv: list[str] | None = None) -> None:
    """Serve the batch flow as a deployment until interrupted."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--name", default="batch", help="deployment name")
    parser.add_argument("--cron", default=None, help="cron schedule, e.g. '0 3 * * *'")
    parser.add_argument("--manifest", default=None, help="default manifest (path or fsspec URL)")
    parser.add_argument("--deliver-to", default=None, help="default delivery target (URL or saved block)")
    parser.add_argument("--output", default=None, help="default local output folder")
    parser.add_argument("--concurrency", type=int, default=None, help="generations in flight at most")
    args = parser.parse_args(argv)
    defaults = {
        "manifest": args.manifest,
        "deliver_to": args.deliver_to,
        "output": args.output,
        "concurrency": args.concurrency,
    }
    batch_reference_to_video.serve(
        name=args.name,
        cron=args.cron,
        parameters={k: v for k, v in defaults.items() if v is not None},
        print_starting_message=True,
    )


if __name__ == "__main__":
    main()
