"""Every environment variable the package reads, and every default a user may want to look up.

:func:`get_settings` reads the environment each time it is called (cheap: a handful of
``os.environ`` look-ups), so a variable set by a test, the demo or a wrapper script takes effect at
once. Nothing else in the package reads ``os.environ``; a value passed explicitly (a block field, a
flag, a parameter) always wins over the environment.

| variable | field | default |
|---|---|---|
| ``OXEN_API_KEY`` | ``api_key`` | none (a missing key fails before any request) |
| ``OXEN_BASE_URL`` | ``base_url`` | ``https://hub.oxen.ai/api`` |
| ``SEEDANCE_STATE`` | ``state`` | none: then ``SEEDANCE_STATE_DIR`` (the shared state store, below) |
| ``SEEDANCE_STATE_DIR`` | ``state_dir`` | ``~/.seedance`` (journal, reference cache) |
| ``SEEDANCE_PRICE_PER_SECOND`` | ``price_per_second`` | 0.40 USD |
| ``SEEDANCE_HOSTING`` | ``hosting`` | ``data`` (``oxen`` when a repository is set) |
| ``SEEDANCE_REPOSITORY`` | ``repository`` | none |

``SEEDANCE_STATE`` names the state store that the journal and the presigned-URL record live in, when
several machines must share them: ``s3://bucket/prefix/``, ``s3-bucket/<block>`` or a folder (see
:mod:`seedance_prefect.state`). Unset, they live in ``SEEDANCE_STATE_DIR`` as before.

A plain dataclass rather than ``pydantic-settings``: importing ``pydantic_settings`` costs about
0.15 s, a third of ``seedance plan``'s start-up, for six variables.

Example:
    >>> s = get_settings({"SEEDANCE_STATE_DIR": "/srv/seedance", "SEEDANCE_PRICE_PER_SECOND": "0.5"})
    >>> str(s.state_path("journal")), s.price_per_second, s.api_key, s.state
    ('/srv/seedance/journal', 0.5, None, None)
    >>> get_settings({"SEEDANCE_STATE": "s3://bucket/seedance/"}).state
    's3://bucket/seedance/'
    >>> DEFAULT_TIMEOUT_SECONDS, DEFAULT_POLL_INTERVAL, DEFAULT_SAFETY_POLL_INTERVAL
    (1800.0, 15.0, 30.0)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .limits import DEFAULT_BASE_URL, PRICE_PER_SECOND_USD

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_NOT_FOUND_GRACE_SECONDS",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_SAFETY_POLL_INTERVAL",
    "DEFAULT_TIMEOUT_SECONDS",
    "FILESYSTEM_LEASE_STORAGE",
    "HOSTING_ENV",
    "PRICE_ENV",
    "REPOSITORY_ENV",
    "STATE_DIR_ENV",
    "STATE_ENV",
    "Settings",
    "get_settings",
]

API_KEY_ENV = "OXEN_API_KEY"
BASE_URL_ENV = "OXEN_BASE_URL"
STATE_DIR_ENV = "SEEDANCE_STATE_DIR"
STATE_ENV = "SEEDANCE_STATE"
PRICE_ENV = "SEEDANCE_PRICE_PER_SECOND"
HOSTING_ENV = "SEEDANCE_HOSTING"
REPOSITORY_ENV = "SEEDANCE_REPOSITORY"

#: Seconds a generation may take before the remote job is cancelled (tasks, flows, CLI, client).
DEFAULT_TIMEOUT_SECONDS = 1800.0
#: Seconds between status polls when polling is the only signal (``SeedanceClient.wait``).
DEFAULT_POLL_INTERVAL = 15.0
#: Seconds between the safety polls of a wait driven by completion events (tasks and flows): the
#: events say when to look, so the poll only covers a lost event or a dropped stream.
DEFAULT_SAFETY_POLL_INTERVAL = 30.0
#: Seconds after the start of a wait during which a 404 for a generation never seen is taken for the
#: queue lagging behind the enqueue answer (every wait: ``client.wait``, tasks and flows).
DEFAULT_NOT_FOUND_GRACE_SECONDS = 30.0
#: The Prefect lease storage that keeps a concurrency limit's leases on disk (under
#: ``$PREFECT_HOME/concurrency_leases``), so that they outlive the embedded server of the process that
#: took them: the ``seedance`` CLI's default for the servers it starts
#: (:mod:`seedance_prefect.cli.prefect_env`), and where :func:`seedance_prefect.slots.reclaim_slots`
#: can read them.
FILESYSTEM_LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"


@dataclass(frozen=True)
class Settings:
    """What the environment says, with the defaults filled in.

    Attributes:
        api_key: ``OXEN_API_KEY`` (stripped), or None. Never logged or printed.
        base_url: ``OXEN_BASE_URL``, else the public API.
        state_dir: ``SEEDANCE_STATE_DIR``, else ``~/.seedance``.
        price_per_second: ``SEEDANCE_PRICE_PER_SECOND``, else the documented price.
        hosting: ``SEEDANCE_HOSTING`` (``data``, ``oxen`` or ``s3-bucket/<block>``), or None.
        repository: ``SEEDANCE_REPOSITORY`` (``namespace/name`` for Oxen hosting), or None.
        state: ``SEEDANCE_STATE``: where the journal and the presigned-URL record live when several
            machines share them (``s3://bucket/prefix/``, ``s3-bucket/<block>`` or a folder), or None
            (then ``state_dir``). Read by :func:`seedance_prefect.state.resolve_state`.
    """

    api_key: str | None
    base_url: str
    state_dir: Path
    price_per_second: float
    hosting: str | None
    repository: str | None
    state: str | None = None

    def __repr__(self) -> str:
        key = "set" if self.api_key else None
        return (
            f"Settings(api_key={key!r}, base_url={self.base_url!r}, state_dir={str(self.state_dir)!r}, "
            f"price_per_second={self.price_per_second!r}, hosting={self.hosting!r}, "
            f"repository={self.repository!r}, state={self.state!r})"
        )

    def state_path(self, name: str) -> Path:
        """The folder ``name`` of the local state (``journal``, ``references``...)."""
        return self.state_dir / name


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def get_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``), with the defaults filled in.

    Raises:
        ValueError: ``SEEDANCE_PRICE_PER_SECOND`` is not a number (the message names the variable).

    Example:
        >>> get_settings({}).base_url
        'https://hub.oxen.ai/api'
    """
    env = os.environ if env is None else env
    state = _text(env, STATE_DIR_ENV)
    price = _text(env, PRICE_ENV)
    try:
        price_value = float(price) if price else PRICE_PER_SECOND_USD
    except ValueError:
        raise ValueError(f"{PRICE_ENV} must be a number of US dollars per second, got {price!r}") from None
    return Settings(
        api_key=_text(env, API_KEY_ENV),
        base_url=_text(env, BASE_URL_ENV) or DEFAULT_BASE_URL,
        state_dir=Path(state).expanduser() if state else Path.home() / ".seedance",
        price_per_second=price_value,
        hosting=_text(env, HOSTING_ENV),
        repository=_text(env, REPOSITORY_ENV),
        state=_text(env, STATE_ENV),
    )
