"""Domain errors: small exception classes, translated to HTTP problems at the edge."""


class DomainError(Exception):
    """Base class of every error the domain raises on purpose."""


class NotFound(DomainError):
    """The thing does not exist, or belongs to another organization."""


class Unauthorized(DomainError):
    """A credential is missing, malformed, unknown, expired or revoked.

    The message says which mistake it is in words the caller can act on, showing at
    most the credential's hint (domain/credential_refusals.py); ``reason`` is a short
    code for metrics and logs (``missing``, ``malformed``, ``unknown``, ``expired``…).
    """

    def __init__(self, message: str, reason: str = "other"):
        super().__init__(message)
        self.reason = reason


class InvalidInput(DomainError):
    """A command's input breaks a domain rule."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class InvalidWebhookUrl(InvalidInput):
    def __init__(self, message: str):
        super().__init__(f"Webhook URL {message}.", field="url")


class Conflict(DomainError):
    """The command cannot be applied to the current state."""


class CatalogBehind(DomainError):
    """The index of an organization's data has not yet reached its newest write within
    the wait allowed: the read is refused rather than answered with stale data."""
