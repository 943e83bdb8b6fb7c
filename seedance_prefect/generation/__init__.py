"""Steps 3-5 without Prefect: enqueue once (never pay twice), rate limits, results to local files.

- :mod:`.journal`: the durable journal, one entry per request fingerprint, claimed right before the
  POST and written after it, in a state store that several machines may share
  (:mod:`seedance_prefect.state`); also where deliveries are noted (:meth:`Journal.record_deliveries`).
- :mod:`.enqueue`: :func:`enqueue_once` (reattach, wait for another run's live claim, recover a lost
  answer by listing the queue, or claim and post) and its parts :func:`reattach`, :func:`recover_lost`,
  :func:`recover_posting`, :func:`journal_body`.
- :mod:`.ratelimit`: :func:`post_waiting_out_429`, the one loop that waits out 429 answers to a POST.
- :mod:`.download`: :func:`download_generation`, :func:`generate_and_save` (synchronous endpoint)
  and their :class:`DownloadedVideo` record.

The Prefect tasks of :mod:`seedance_prefect.tasks` (``enqueue_generation``, ``download_video``,
``generate_sync``) are thin wrappers of these functions; this package imports no Prefect.

Example:
    >>> from seedance_prefect.generation import Journal, enqueue_once
    >>> Journal.__name__, enqueue_once.__name__
    ('Journal', 'enqueue_once')
"""

from .download import DownloadedVideo, download_generation, generate_and_save
from .enqueue import Slot, enqueue_once, journal_body, reattach, recover_lost, recover_posting
from .journal import Attempt, Claim, Delivery, Journal, JournalEntry, default_journal_dir, row_matches
from .ratelimit import RATE_LIMIT_TRIES, post_waiting_out_429

__all__ = [
    "RATE_LIMIT_TRIES",
    "Attempt",
    "Claim",
    "Delivery",
    "DownloadedVideo",
    "Journal",
    "JournalEntry",
    "Slot",
    "default_journal_dir",
    "download_generation",
    "enqueue_once",
    "generate_and_save",
    "journal_body",
    "post_waiting_out_429",
    "reattach",
    "recover_lost",
    "recover_posting",
    "row_matches",
]
