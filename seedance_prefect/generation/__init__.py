"""Steps 3-5 without Prefect: the durable journal that keeps a request from being paid twice.

- :mod:`.journal`: one entry per request fingerprint, written before and after the POST.

Example:
    >>> from seedance_prefect.generation import Journal
    >>> Journal.__name__
    'Journal'
"""

from .journal import Journal, JournalEntry, row_matches

__all__ = ["Journal", "JournalEntry", "row_matches"]
