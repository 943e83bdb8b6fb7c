"""Moved to :mod:`tests.kit` (shared by every test folder); this name is kept while tests move over."""

from tests.kit import API_KEY, SECRETS, set_faults, stats, stop_process, wait_until

__all__ = ["API_KEY", "SECRETS", "set_faults", "stats", "stop_process", "wait_until"]
