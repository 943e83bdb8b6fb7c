"""Sample media made lazily, by name: shared by the preflight and the reference-preprocessing tests.

Each test folder keeps its own recipes (name -> function writing the file); :class:`LazyMedia`
makes a file on first use and remembers it, so a targeted run makes only what it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

#: Writes a sample under the given path (without extension; the recipe picks one) and returns it.
Recipe = Callable[[Path], Path]


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` and return the path (a recipe for files that are not media).

    Example:
        >>> import tempfile
        >>> write(Path(tempfile.mkdtemp()) / "notes.jpg", b"not a photo").read_bytes()
        b'not a photo'
    """
    path.write_bytes(data)
    return path


class LazyMedia:
    """Lazy name -> path mapping of generated media files.

    Attributes:
        root: Folder the files are made in.
        recipes: Name -> recipe.
        requires: Name -> module a recipe needs (the test is skipped without it).
        made: The files made so far.

    Example:
        >>> import tempfile
        >>> note = lambda p: write(p.with_suffix(".txt"), b"hi")
        >>> media = LazyMedia(Path(tempfile.mkdtemp()), {"note": note})
        >>> media["note"].name, media.s("note") == str(media["note"]), list(media.made)
        ('note.txt', True, ['note'])
    """

    def __init__(
        self, root: Path, recipes: Mapping[str, Recipe], requires: Mapping[str, str] | None = None
    ) -> None:
        self.root = root
        self.recipes = dict(recipes)
        self.requires = dict(requires or {})
        self.made: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self.made:
            if name in self.requires:
                pytest.importorskip(self.requires[name])
            self.made[name] = self.recipes[name](self.root / name)
        return self.made[name]

    def s(self, name: str) -> str:
        """The path as a string, as it appears in a request."""
        return str(self[name])
