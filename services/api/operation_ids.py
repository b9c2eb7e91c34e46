"""Every OpenAPI operation gets a stable snake_case ``operationId`` and a tag (SPEC 13).

Generated clients name their functions after ``operationId`` (``create_job``,
``list_api_keys``) and group them by tag; without one they fall back to the path
(``get_v1_jobs_job_id``). The id is the route's view function name, which every route
already has and which reads as the use case, so there is no second list to keep: renaming
a view renames its operation (tests/integration/test_openapi_operations.py pins them).
The tag is flask-smorest's, the blueprint's name (``public``, ``admin``, ``deliveries``).
"""

from __future__ import annotations

import re
from typing import Any

from apispec import BasePlugin

SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


class OperationIds(BasePlugin):  # type: ignore[misc]
    """An apispec plugin: ``operationId`` from the route's endpoint, unique in the document."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        name = rule.endpoint.rsplit(".", 1)[-1]
        for method, operation in operations.items():
            operation_id = name if len(operations) == 1 else f"{method}_{name}"
            if not SNAKE_CASE.fullmatch(operation_id):
                raise ValueError(f"{operation_id!r} ({method} {path}) is not snake_case")
            where = f"{method.upper()} {path}"
            if self.seen.setdefault(operation_id, where) != where:
                raise ValueError(f"operationId {operation_id!r} of {where} is taken")
            operation.setdefault("operationId", operation_id)
