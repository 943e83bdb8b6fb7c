"""A griffe extension for the API reference: the package's docstrings as Markdown renders them.

- ``Example:`` sections are read as ``Examples:``. The package's docstrings (and Prefect's block
  standards, which look for an ``Example:`` admonition) write ``Example:``; Google-style parsing
  makes that an admonition of plain Markdown, where doctest lines (``>>> ...``) would render as
  nested quotes. As an ``Examples:`` section they render as Python console blocks, and prose and
  fenced code around them stay Markdown.
- Sphinx roles (``:func:`~pkg.mod.name```, ``:class:`title <pkg.Name>```) become code spans
  (``name``, ``title``): Markdown has no roles, and most targets are internal modules that the
  reference does not document.

Example:
    >>> _ROLE.sub(_code_span, "see :meth:`~a.B.run` and :class:`the client <a.Client>`")
    'see `run` and `the client`'
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|attr|data|exc|obj|const):`(?P<target>[^`]+)`")


def _code_span(match: re.Match[str]) -> str:
    target = match["target"].strip()
    titled = re.fullmatch(r"(?P<title>.+?)\s*<(?P<ref>[^>]+)>", target)
    if titled:
        return f"`{titled['title']}`"
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headers to ``Examples:`` and turn Sphinx roles into code spans."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each object once the tree is loaded."""
        if obj.docstring is not None:
            text = _EXAMPLE.sub(r"\g<indent>Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(_code_span, text)
