"""Test-wide settings: a private Prefect home and journal, quiet and patient Prefect defaults.

Set before anything imports Prefect, so every test (and every subprocess a test starts) uses a
throw-away Prefect home instead of the user's ``~/.prefect``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_ROOT = tempfile.mkdtemp(prefix="seedance-tests-")
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
os.environ.setdefault("PREFECT_HOME", os.path.join(_ROOT, "prefect-home"))
os.environ.setdefault("SEEDANCE_STATE_DIR", os.path.join(_ROOT, "state"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
for _key in ("OXEN_API_KEY", "OXEN_BASE_URL"):
    os.environ.pop(_key, None)
