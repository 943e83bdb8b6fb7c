"""``python -m seedance_prefect.emulator``."""

from __future__ import annotations

from seedance_prefect.emulator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
