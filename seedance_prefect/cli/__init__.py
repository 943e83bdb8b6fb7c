"""The ``seedance`` command (plan, generate, batch, emulator, demo).

- :mod:`.main`: argument parsing and exit codes (``EXIT_*``); ``seedance plan`` imports no Prefect.
- :mod:`.commands`: the ``generate`` and ``batch`` runs and their printing (and the old path
  ``seedance_prefect.runtime``, which re-exports the names that moved to the two modules below).
- :mod:`.prefect_env`: the local Prefect environment (defaults, no flow run heartbeats).
- :mod:`.interrupt`: Ctrl-C and SIGTERM cancel the run's remote generations first, then interrupt.
- :mod:`.demo`: ``seedance demo``.

The CLI is the top layer: it may import anything, nothing else in the package imports it.

Example:
    >>> from seedance_prefect.cli import main
    >>> main.__module__
    'seedance_prefect.cli.main'
"""

from .main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "main"]
