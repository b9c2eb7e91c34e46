"""The problem types of our RFC 9457 answers, and the page each ``type`` URI serves.

A problem's ``type`` is a URI a person can open (SPEC 13): ``/problems/validation-error``
answers a page saying what the problem means and what to do about it. Every type the API
uses is one of the constants below, so none can be used without its page; a problem
without one of these is ``about:blank`` (RFC 9457: the status code says it all).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, render_template

PREFIX = "/problems"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    meaning: str
    what_to_do: str

    @property
    def uri(self) -> str:
        return f"{PREFIX}/{self.slug}"


MALFORMED_REQUEST = ProblemType(
    "malformed-request",
    400,
    "The request could not be read",
    "The body is not JSON this API can read: it does not parse, or it holds a NUL "
    "character (\\u0000), an unpaired surrogate escape (\\ud800) or nesting deeper than "
    "32 levels, which no store can keep. Nothing was changed.",
    "Send UTF-8 JSON with Content-Type: application/json. The detail names what was "
    "wrong; fix it and send the request again.",
)
UNKNOWN_QUERY_PARAMETER = ProblemType(
    "unknown-query-parameter",
    400,
    "Unknown query parameter",
    "The URL has a query parameter this route does not take. It is refused rather than "
    "ignored: an ignored filter (a misspelt ?externalid=, say) would answer with every "
    "record, and a script taking the first one would act on the wrong one. Nothing was "
    "changed.",
    "The detail names the unknown parameters and lists those the route takes; errors has "
    "one entry per unknown name. Fix the spelling or drop the parameter. The OpenAPI "
    "document (/openapi.json, readable at /docs) lists every route's parameters.",
)
UNAUTHORIZED = ProblemType(
    "unauthorized",
    401,
    "Unauthorized",
    "The request has no credential this route accepts. The detail says which mistake it "
    "is: no Authorization header (or the key in another header such as X-API-Key), not the "
    "Bearer scheme, the wrong kind of credential (an admin token on the Public API, an API "
    "key on the admin API), not a Tenzo credential, a truncated key or a mistyped "
    "character (failed checksum), an unknown key, or a key that expired or was revoked (and "
    "when). It shows at most the key's hint (tenzo_pk_…a1B2), never the key.",
    "Send Authorization: Bearer tenzo_pk_… (the Public API, /v1) or Authorization: Bearer "
    "tenzo_admin_… (the admin API, /admin/v1), the whole credential as it was shown once "
    "when it was created, never in the query string. An unknown, expired or revoked key "
    "cannot be made to work: create a new key (POST /admin/v1/api-keys, or the dashboard's "
    "API keys page).",
)
NOT_FOUND = ProblemType(
    "not-found",
    404,
    "Not found",
    "There is no such resource in your organization. A resource of another organization "
    "answers the same, as if it did not exist.",
    "Check the id (it is the id this API answered with, not your ATS's id; a job or "
    "candidate is found by your id with ?external_id=) and that the credential belongs "
    "to the right organization.",
)
CONFLICT = ProblemType(
    "conflict",
    409,
    "Conflict",
    "The request cannot be applied to the resource as it is now (a delivery still "
    "pending, a disabled webhook, another request changing the same resource at the same "
    "moment…). Nothing was changed.",
    "Read the resource again, and retry once its state allows the request; the detail "
    "says what stands in the way.",
)
CONTENT_TOO_LARGE = ProblemType(
    "content-too-large",
    413,
    "Content too large",
    "The request body is over the limit of 1 MiB (also when it is sent chunked, without "
    "a Content-Length). The rest of the body may not be read, and the connection may be closed.",
    "Send a smaller body: large texts (a job description, say) have their own bounds, "
    "listed in the OpenAPI document.",
)
UNSUPPORTED_MEDIA_TYPE = ProblemType(
    "unsupported-media-type",
    415,
    "Unsupported media type",
    "The request has a body that is not declared as JSON.",
    "Send the body as JSON with Content-Type: application/json.",
)
VALIDATION_ERROR = ProblemType(
    "validation-error",
    422,
    "Validation error",
    "The body or the query parameters are readable but not valid: a required field is "
    "missing, a value is out of its bounds or of the wrong type, a field is unknown, or a "
    "rule of the domain refuses it (an expiry in the past, a webhook URL that is not "
    "public…). Nothing was changed.",
    "errors maps each field to what is wrong with it; the detail repeats it in one "
    "sentence. Fix those fields and send the request again.",
)
RATE_LIMITED = ProblemType(
    "rate-limited",
    429,
    "Rate limited",
    "This API key sent more requests than its rate limit allows (per API process).",
    "Wait the number of seconds in the Retry-After header, then retry; spread bulk "
    "imports over time or fewer threads.",
)

PROBLEM_TYPES = {
    problem_type.slug: problem_type
    for problem_type in (
        MALFORMED_REQUEST,
        UNKNOWN_QUERY_PARAMETER,
        UNAUTHORIZED,
        NOT_FOUND,
        CONFLICT,
        CONTENT_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        VALIDATION_ERROR,
        RATE_LIMITED,
    )
}

blp = Blueprint("problems", __name__, url_prefix=PREFIX)


@blp.get("")
def index() -> str:
    return render_template("problem_types.html", problem_types=PROBLEM_TYPES.values(), one=None)


@blp.get("/<slug>")
def page(slug: str) -> str:
    problem_type = PROBLEM_TYPES.get(slug)
    if problem_type is None:
        abort(404)
    return render_template("problem_types.html", problem_types=[problem_type], one=problem_type)
