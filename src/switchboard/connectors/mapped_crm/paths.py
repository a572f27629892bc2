"""Field paths into a CRM's JSON records: parsed once (at start-up), read and written as data.

Grammar: segments joined by ``.``; a segment is a key (letters, digits, ``_``, ``-``, ``$``,
``@``) optionally followed by one selector in brackets:

* ``[primary]`` — in a list of objects, the item whose ``primary`` is ``true``, else the first;
* ``[N]`` — the N-th item (from 0).

``properties.first_name``, ``emails[primary].value``, ``tags[0]``. The empty path is the value
itself (a record selector's "the body is the list").

Writing builds the nested objects: ``name.first = "Ada"`` → ``{"name": {"first": "Ada"}}``;
several paths under one key merge into one object. Limits (refused at start-up by
:func:`writable`): ``[N]`` with N > 0 cannot be written (there is no item before it to keep), and a
``[primary]`` or ``[0]`` write sends a list of that one item — the CRM's other items are replaced,
so a path into a list suits CRMs whose update merges or whose records carry one such item.
Clearing (``None``) a path through a list sends the empty list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SEGMENT = re.compile(r"^([A-Za-z0-9_$@-]+)(?:\[([^\]]*)\])?$")
SELECTORS = ("primary", "N (an index from 0)")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What :meth:`FieldPath.read` returns when the path leads nowhere (unlike a JSON ``null``)."""


@dataclass(frozen=True)
class Segment:
    key: str
    selector: str | int | None = None  # "primary", an index, or none


@dataclass(frozen=True)
class FieldPath:
    text: str
    segments: tuple[Segment, ...]

    def read(self, value: Any) -> Any:
        """The value at this path, or :data:`MISSING`."""
        for segment in self.segments:
            if not isinstance(value, dict) or segment.key not in value:
                return MISSING
            value = value[segment.key]
            if segment.selector is None:
                continue
            if not isinstance(value, list) or not value:
                return MISSING
            if segment.selector == "primary":
                value = next(
                    (i for i in value if isinstance(i, dict) and i.get("primary") is True),
                    value[0],
                )
            else:
                assert isinstance(segment.selector, int)
                if segment.selector >= len(value):
                    return MISSING
                value = value[segment.selector]
        return value

    def write(self, target: dict[str, Any], value: Any) -> None:
        """Set this path in ``target``, creating (or merging into) the objects on the way."""
        node = target
        last = len(self.segments) - 1
        for n, segment in enumerate(self.segments):
            if segment.selector is None:
                if n == last:
                    node[segment.key] = value
                    return
                child = node.get(segment.key)
                if not isinstance(child, dict):
                    child = node[segment.key] = {}
                node = child
                continue
            if value is None:  # clearing through a list: no item left
                node[segment.key] = []
                return
            items = node.get(segment.key)
            if not isinstance(items, list) or not items:
                item: Any = {"primary": True} if segment.selector == "primary" else {}
                items = node[segment.key] = [item]
            if n == last:
                items[0] = value
                return
            if not isinstance(items[0], dict):
                items[0] = {}
            node = items[0]

    def __str__(self) -> str:
        return self.text


def parse_path(text: str, *, allow_empty: bool = False) -> FieldPath:
    """Parse ``text`` or raise ``ValueError`` saying what is wrong with it."""
    if text == "":
        if allow_empty:
            return FieldPath("", ())
        raise ValueError("empty path")
    segments = []
    for part in text.split("."):
        match = _SEGMENT.match(part)
        if match is None:
            raise ValueError(
                f"bad path {text!r} at {part!r} (use keys joined by '.', e.g. "
                "properties.email or emails[primary].value)"
            )
        key, raw = match.group(1), match.group(2)
        selector: str | int | None = None
        if raw is not None:
            if raw == "primary":
                selector = "primary"
            elif raw.isascii() and raw.isdigit():
                selector = int(raw)
            else:
                raise ValueError(
                    f"bad path {text!r}: unknown selector [{raw}] (use [primary] or [N])"
                )
        segments.append(Segment(key, selector))
    return FieldPath(text, tuple(segments))


def writable(path: FieldPath) -> FieldPath:
    """``path`` if it can be written, else ``ValueError`` naming the limit."""
    for segment in path.segments:
        if isinstance(segment.selector, int) and segment.selector > 0:
            raise ValueError(
                f"path {path.text!r} cannot be written: [{segment.selector}] has items before "
                "it (only [0] and [primary] build a list)"
            )
    return path
