"""How every API request body is read: whole, at most 1 MiB, and as JSON a store can keep.

- JSON with contracts/json_text.py's ``loads``: no NUL, no unpaired surrogate, no
  nesting past its MAX_DEPTH (each was a 500 later on).
- a chunked body (no Content-Length) over the limit: werkzeug stops reading at the
  limit without saying so, and the cut body looked like malformed JSON instead of 413.

Both readers of a request body use ``loads``: Flask's ``request.get_json`` (the app's
JSON provider) and the webargs parser behind every ``@blp.arguments`` (through
:class:`Blueprint`), so each refusal is the same 400 ``/problems/malformed-request``.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import flask
import flask_smorest
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge

from contracts.json_text import RefusedJSON, loads

MALFORMED_DETAIL = "Invalid JSON body."


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
        if kwargs:  # a caller that asks for more (an object_hook, say) gets Flask's
            return super().loads(s, **kwargs)
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
