"""The ``seedance`` command (plan, generate, batch, emulator, demo).

- :mod:`.main`: argument parsing and exit codes; ``seedance plan`` imports no Prefect.
- :mod:`.commands`: ``generate`` and ``batch`` runs, the local Prefect environment, the demo.

Example:
    >>> from seedance_prefect.cli import main
    >>> main.__module__
    'seedance_prefect.cli.main'
"""

from .main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "main"]
