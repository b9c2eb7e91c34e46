"""How every API request body is read: whole, at most 1 MiB, and as JSON a store can keep.

The standard library's JSON reader, which webargs and Flask use, accepts or chokes on
input no endpoint of this API can take, and the request failed much later:

- a string with NUL (``\\u0000``) or an unpaired UTF-16 surrogate (``"\\ud800"``):
  PostgreSQL text and jsonb cannot hold NUL (and the dispatcher's projection tables
  would get it), and no UTF-8 encoder can write a lone surrogate, so saving the event
  failed with a 500. Refused in keys and values; a paired escape (an emoji) is fine.
- nesting deeper than the recursion limit (``[[[[…``): the reader raised RecursionError,
  a 500. Bodies of this API are one or two levels deep; past MAX_DEPTH is refused.
- a chunked body (no Content-Length) over the limit: werkzeug stops reading at the
  limit without saying so, and the cut body looked like malformed JSON instead of 413.

Both readers of a request body use :func:`loads`: Flask's ``request.get_json`` (the
app's JSON provider) and the webargs parser behind every ``@blp.arguments`` (through
:class:`Blueprint`), so each refusal is the same 400 ``/problems/malformed-request``.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

import flask
import flask_smorest
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge

MAX_DEPTH = 32
MALFORMED_DETAIL = "Invalid JSON body."
UNSTORABLE_TEXT = "strings must not contain NUL characters or unpaired UTF-16 surrogates"

# Normal bodies skip the walk over every string: only NUL or an escape that could
# decode to NUL or to a surrogate (\ud800-\udfff) can put one in a string.
_MAY_HOLD_UNSTORABLE_TEXT = re.compile(r"\x00|\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


class RefusedJSON(json.JSONDecodeError):
    """Well-formed JSON this API does not take; ``msg`` says why."""

    def __init__(self, reason: str, document: str):
        super().__init__(reason, document, 0)


def loads(data: str | bytes) -> Any:
    """Parse a JSON text (bytes must be UTF-8), or raise ``json.JSONDecodeError``
    (``RefusedJSON`` for nesting past MAX_DEPTH or an unstorable string) or
    ``UnicodeDecodeError``: never RecursionError."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        document = json.loads(text)
    except RecursionError:
        raise RefusedJSON(_too_deep(), text) from None
    may_be_deep = text.count("[") + text.count("{") > MAX_DEPTH
    if may_be_deep or _MAY_HOLD_UNSTORABLE_TEXT.search(text):
        _check(document, text)
    return document


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep"


def _check(document: Any, text: str) -> None:
    """Walk the document without recursion: its depth, and every key and string."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise RefusedJSON(_too_deep(), text)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and _UNSTORABLE_TEXT.search(key):
                    raise RefusedJSON(UNSTORABLE_TEXT, text)
                pending.append((item, depth + 1))
        elif isinstance(value, str) and _UNSTORABLE_TEXT.search(value):
            raise RefusedJSON(UNSTORABLE_TEXT, text)


def whole_body(request: flask.Request) -> bytes:
    """The request body, or RequestEntityTooLarge when it is over ``max_content_length``.

    With a Content-Length over the limit werkzeug raises 413 itself. A chunked body it
    cuts at the limit silently (on servers that end the input: werkzeug's, gunicorn),
    so one more byte after a body of exactly the limit means it was larger.
    """
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if (
        limit is not None
        and len(data) >= limit
        and request.content_length is None
        and request.environ.get("wsgi.input_terminated")
        and request.input_stream.read(1)
    ):
        raise RequestEntityTooLarge()
    return data


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON with :func:`loads`, so ``request.get_json`` refuses the same input."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)


class JSONBodyParser(FlaskParser):
    """webargs reading bodies with :func:`whole_body` and :func:`loads`."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        return loads(whole_body(req))

    def _handle_invalid_json_error(
        self,
        error: json.JSONDecodeError | UnicodeDecodeError,
        req: flask.Request,
        *args: Any,
        **kwargs: Any,
    ) -> NoReturn:
        detail = f"Invalid JSON body: {error.msg}." if isinstance(error, RefusedJSON) else None
        abort(400, exc=error, messages={"json": [detail or MALFORMED_DETAIL]})


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose ``arguments`` read bodies with JSONBodyParser."""

    ARGUMENTS_PARSER = JSONBodyParser()
