"""Old import paths kept for one release, without a file each: a finder that hands over moved modules.

The package was regrouped into one subpackage per step (``docs/architecture.md``). Importing an old
path (``seedance_prefect.journal``) warns with a :class:`DeprecationWarning` naming the new one and
returns the moved module itself, so attributes, ``monkeypatch`` targets and ``isinstance`` checks
behave the same through either path.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     import seedance_prefect.journal as old
    >>> import seedance_prefect.generation.journal as new
    >>> old is new, caught[0].category.__name__
    (True, 'DeprecationWarning')
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED_MODULES", "install"]

_P = "seedance_prefect."

#: Old module path -> where it lives now (relative to the package).
MOVED_MODULES: dict[str, str] = {
    "_http": "client._http",
    "events": "client.events",
    "inline_video": "client.inline_video",
    "waiting": "client.completion",
    "preflight_rules": "rules",
    "preflight_refs": "preflight.references",
    "preflight_fixes": "preflight.fixes",
    "reference_source": "references.source",
    "media.refs": "references.source",
    "media.plan": "references.plan",
    "media.fixes": "references.fixes",
    "media.preprocess": "references.preprocess",
    "media.hosting": "references.hosting",
    "journal": "generation.journal",
    "verify": "delivery.verify",
    "storage": "delivery.targets",
    "budget": "batch.budget",
    "batch_runner": "batch.runner",
    "pipeline": "tasks",
    "runtime": "cli.commands",  # which re-exports what moved on to cli.prefect_env and cli.demo
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{self.old} moved to {self.new}; import it from there (the old path goes in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the moved module is already imported. Give it back its own ``__spec__``,
        which the import system overwrote with the alias's (relative imports and reload use it)."""
        module.__spec__ = self._spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_P):
            return None
        new = MOVED_MODULES.get(fullname[len(_P) :])
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(fullname, _P + new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once); called by ``seedance_prefect/__init__.py``."""
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
