"""The Flask app factory: admin and public APIs, dashboard, docs, problem+json errors."""

from __future__ import annotations

import time
from typing import Any

import swagger_ui_bundle
from flask import Flask, Response, g, request, send_from_directory
from flask_smorest import Api

from contracts.problem import PROBLEM_CONTENT_TYPE, ProblemSchema
from domain.errors import Unauthorized
from services.api import admin, delivery_routes, metrics, ops, problem_types, public
from services.api.context import ApiServices
from services.api.dashboard import admin_tokens as _admin_tokens  # noqa: F401 (its routes)
from services.api.dashboard import views as dashboard
from services.api.operation_ids import OperationIds
from services.api.problems import problem, register_problem_handlers
from services.api.query_parameters import refuse_unknown_query_parameters
from services.api.request_bodies import StrictJSONProvider

MAX_BODY_BYTES = 1024 * 1024
CREDENTIAL_PREFIX = "tenzo_"
JSON_METHODS = {"POST", "PUT", "PATCH"}


def create_app(services: ApiServices) -> Flask:
    """Build the WSGI app on the services of this API process (services/bootstrap.py)."""
    app = Flask(__name__)
    app.json = StrictJSONProvider(app)  # request.get_json refuses what no store can keep
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        API_TITLE="Tenzo Developer Tools",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}],
            "info": {
                "description": "API keys, the Public API, webhooks and the event history. "
                "Every error is RFC 9457 application/problem+json."
            },
        },
    )
    app.extensions["tenzo"] = services

    api = ProblemApi(app, spec_kwargs={"extra_plugins": [OperationIds()]})
    api.register_blueprint(admin.blp)
    api.register_blueprint(delivery_routes.blp)
    api.register_blueprint(public.blp)
    app.register_blueprint(ops.blp)
    app.register_blueprint(dashboard.blp)
    app.register_blueprint(problem_types.blp)
    register_problem_handlers(app)

    @app.get("/docs/assets/<path:filename>")
    def docs_assets(filename: str) -> Response:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)

    app.before_request(_refuse_credentials_in_query)
    app.before_request(refuse_unknown_query_parameters)
    app.before_request(_require_json_body)
    app.before_request(_start_timer)
    app.after_request(_finish)
    return app


class ProblemApi(Api):  # type: ignore[misc]
    """flask-smorest's Api, documenting every error response as what it is: an RFC 9457
    problem (``application/problem+json``, ProblemSchema), so clients and contract
    checkers (schemathesis) read the OpenAPI document right."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        # flask-smorest registers its error responses (422, the default) with the
        # content type of successful ones; this is its one hook for them.
        self.DEFAULT_RESPONSE_CONTENT_TYPE = PROBLEM_CONTENT_TYPE
        try:
            super()._register_responses()
        finally:
            del self.DEFAULT_RESPONSE_CONTENT_TYPE


def _refuse_credentials_in_query() -> Response | None:
    """Credentials belong in the Authorization header; a URL ends up in logs and history."""
    if any(value.startswith(CREDENTIAL_PREFIX) for value in request.args.values()):
        metrics.API_KEY_REFUSALS.labels("in_query").inc()
        raise Unauthorized(
            "A credential was sent in the query string, where URLs are logged and kept in "
            "histories: send it in the Authorization header (Authorization: Bearer …) "
            "only, and replace it, as it may have been recorded.",
            reason="in_query",
        )
    return None


def _require_json_body() -> Response | None:
    if request.method not in JSON_METHODS or request.blueprint in (None, "ops"):
        return None
    has_body = (request.content_length or 0) > 0 or request.headers.get("Transfer-Encoding")
    if has_body and not request.is_json and request.blueprint != "dashboard":
        return problem(
            415,
            "Unsupported Media Type",
            "Send the body as JSON with Content-Type: application/json.",
            type=problem_types.UNSUPPORTED_MEDIA_TYPE,
        )
    return None


def _start_timer() -> None:
    g.started = time.perf_counter()


def _finish(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule else "unmatched"
    metrics.HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    started: Any = g.get("started")
    if started is not None:
        metrics.HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.status_code == 204:
        response.headers.pop("Content-Type", None)  # no content, so no content type
    if request.path.startswith(("/admin/", "/v1/")):
        response.headers.setdefault("Cache-Control", "no-store")
    return response
