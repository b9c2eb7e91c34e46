"""JSON text as every boundary reads it (API bodies, broker messages): never a crash.

The standard library's reader accepts, or chokes on, input no boundary can take; the
failure then came much later, or took the reader down:

- nesting deeper than the recursion limit (``[[[[…``): RecursionError, a 500 in the API
  and a dispatcher reconnecting forever on one message. Past MAX_DEPTH is refused.
- a string with an unpaired UTF-16 surrogate (``"\\ud800"``): no UTF-8 encoder can write
  it, so saving the event that holds it failed. A paired escape (an emoji) is fine.
- a string with NUL (``\\u0000``), unless ``allow_nul``: PostgreSQL text and jsonb cannot
  hold it, and the API's bodies end in such columns (the dispatcher's projection).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

MAX_DEPTH = 32
UNSTORABLE_TEXT = "strings must not contain NUL characters or unpaired UTF-16 surrogates"
LONE_SURROGATE = "strings must not contain unpaired UTF-16 surrogates"

# Normal texts skip the scan of every string: only NUL, a surrogate already decoded (a
# str given), or an escape that could decode to NUL or to a surrogate can put one there.
_MAY_HOLD_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]|\\\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class RefusedJSON(json.JSONDecodeError):
    """Well-formed JSON no boundary takes; ``msg`` says why."""

    def __init__(self, reason: str, document: str):
        super().__init__(reason, document, 0)


def loads(data: str | bytes, *, allow_nul: bool = False) -> Any:
    """Parse a JSON text (bytes must be UTF-8), or raise ``json.JSONDecodeError``
    (``RefusedJSON`` for nesting past MAX_DEPTH or an unstorable string) or
    ``UnicodeDecodeError``: never RecursionError."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        document = json.loads(text)
    except RecursionError:
        raise RefusedJSON(_too_deep(), text) from None
    may_be_deep = text.count("[") + text.count("{") > MAX_DEPTH
    may_hold_unstorable = _MAY_HOLD_UNSTORABLE_TEXT.search(text) is not None
    if may_be_deep or may_hold_unstorable:
        refused, reason = (
            (_SURROGATE, LONE_SURROGATE) if allow_nul else (_UNSTORABLE_TEXT, UNSTORABLE_TEXT)
        )
        _check(document, text, refused if may_hold_unstorable else None, reason)
    return document


def is_storable(text: str) -> bool:
    """Whether a string holds neither NUL nor an unpaired surrogate (a command-line
    argument that was not UTF-8 arrives with surrogates in it)."""
    return _UNSTORABLE_TEXT.search(text) is None


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep"


def _check(document: Any, text: str, refused: re.Pattern[str] | None, reason: str) -> None:
    """Walk the document a level at a time (no recursion): its depth and, unless
    ``refused`` is None, every key and string."""
    if refused is not None and isinstance(document, str) and refused.search(document):
        raise RefusedJSON(reason, text)
    level, depth = [document], 1
    while level:
        deeper = []
        for value in level:
            children: Iterable[Any]
            if isinstance(value, dict):
                if refused is not None and any(refused.search(key) for key in value):
                    raise RefusedJSON(reason, text)
                children = value.values()
            elif isinstance(value, list):
                children = value
            else:
                continue
            for child in children:
                if isinstance(child, dict | list):
                    deeper.append(child)
                elif refused is not None and isinstance(child, str) and refused.search(child):
                    raise RefusedJSON(reason, text)
        if deeper and depth >= MAX_DEPTH:
            raise RefusedJSON(_too_deep(), text)
        level, depth = deeper, depth + 1
