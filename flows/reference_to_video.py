"""Deployable entry point of the reference-to-video flow.

Serve it (a long-running process that runs scheduled and triggered runs, and handles cancellation):

    python flows/reference_to_video.py --name reference-to-video

or deploy it to a work pool with ``prefect deploy`` (see ``flows/prefect.yaml``).
"""

from __future__ import annotations

import argparse

from seedance_prefect.flows import reference_to_video

__all__ = ["reference_to_video"]


def main(argv: list[str] | None = None) -> None:
    """Serve the flow as a deployment until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="reference-to-video", help="deployment name")
    parser.add_argument("--cron", default=None, help="optional cron schedule, e.g. '0 3 * * *'")
    args = parser.parse_args(argv)
    reference_to_video.serve(name=args.name, cron=args.cron, print_starting_message=True)


if __name__ == "__main__":
    main()
