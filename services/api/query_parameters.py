"""A query parameter a route does not declare is refused, never ignored (SPEC 13).

A misspelt or unsupported filter (``?externalid=``, ``?event_id=``) that is ignored
answers with every record, and a script taking the first item acts on the wrong one.
Every API route declares its query parameters once, as the marshmallow schema of its
``@blp.arguments(..., location="query")`` (which the OpenAPI document shows too); this
check reads that declaration, so there is no second list to keep in step. A route
without one takes no query parameters.

Pages for people (the dashboard, the API docs, the problem pages) are not checked: a
browser or a link may add parameters of its own there, and nothing acts on the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from flask import Response, current_app, request

from services.api import problem_types as types
from services.api.problems import problem

PAGES_FOR_PEOPLE = frozenset({"dashboard", "api-docs", "problems"})


@cache
def declared_query_parameters(view: Callable[..., Any]) -> frozenset[str]:
    """The query parameter names a view declares through flask-smorest's ``arguments``."""
    names: set[str] = set()
    arguments = getattr(view, "_apidoc", {}).get("arguments", {})
    for parameter in arguments.get("parameters", []):
        if parameter.get("in") != "query":
            continue
        schema = parameter["schema"]
        schema = schema() if isinstance(schema, type) else schema
        names.update(field.data_key or name for name, field in schema.load_fields.items())
    return frozenset(names)


def refuse_unknown_query_parameters() -> Response | None:
    """``before_request``: 400 problem+json naming each parameter the route does not take."""
    if not request.query_string:
        return None  # most requests: nothing to check
    endpoint, blueprint = request.endpoint, request.blueprint
    if endpoint is None or blueprint is None or blueprint in PAGES_FOR_PEOPLE:
        return None  # no route (the 404 or 405 says more than this would), or a page
    declared = declared_query_parameters(current_app.view_functions[endpoint])
    unknown = sorted(request.args.keys() - declared)
    if not unknown:
        return None
    takes = (
        f"This route takes: {', '.join(sorted(declared))}."
        if declared
        else "This route takes no query parameters."
    )
    named = ", ".join(unknown)
    noun = "parameter" if len(unknown) == 1 else "parameters"
    return problem(
        400,
        "Bad Request",
        f"Unknown query {noun}: {named}. {takes}",
        type=types.UNKNOWN_QUERY_PARAMETER,
        errors={name: ["Unknown query parameter."] for name in unknown},
    )
