"""DeveloperTools: the use cases of organizations, API keys and webhooks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError

from domain import credential_refusals as refusals
from domain import credentials
from domain.actors import Actor, actor
from domain.api_keys import ROLL_OVERLAP_HOURS_MAX, ApiKey
from domain.deliveries import DeliveryUseCases, RetryRule, TestEventRenderer
from domain.errors import Conflict, InvalidInput, NotFound
from domain.fast_forward import FastForwardReads, HasNewerEvents
from domain.organizations import FIRST_TOKEN_NAME, AdminToken, Organization
from domain.paging import page_of_ids
from domain.ports import Catalog, ManyAggregates, PersonalData
from domain.recruiting import RecruitingUseCases
from domain.webhook_health import WebhookHealthUseCases
from domain.webhook_urls import WebhookUrlPolicy
from domain.webhooks import Webhook, generate_secret, secret_problem, webhook_id

A = TypeVar("A", bound=Aggregate)

MAX_OVERLAP_HOURS = 168
DEFAULT_OVERLAP_HOURS = 24

UNSET: Any = object()
"""Marks a PATCH field that was not given (None means "remove" for the secret)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class DeveloperTools(
    RecruitingUseCases, DeliveryUseCases, WebhookHealthUseCases, Application[UUID]
):
    """Organizations, their admin tokens, API keys, webhook configuration; jobs and
    candidates (RecruitingUseCases) and deliveries (DeliveryUseCases)."""

    name = "DeveloperTools"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        url_policy: WebhookUrlPolicy,
        catalog: Callable[[Application[UUID]], Catalog],
        personal_data: Callable[[Application[UUID]], PersonalData],
        many_aggregates: Callable[[Application[UUID]], ManyAggregates],
        newer_events_probe: Callable[[Application[UUID]], HasNewerEvents | None],
        render_test_event: TestEventRenderer,
        retry: RetryRule,
        clock: Callable[[], datetime] = utc_now,
    ):
        """``catalog``, ``personal_data``, ``many_aggregates`` and ``newer_events_probe``
        are factories given this application, built once its event store is open: the
        catalog indexes that store, ``personal_data`` keeps the candidates' keys,
        ``many_aggregates`` reads a page of aggregates in one query, and the probe is a
        lean query on it (None keeps the library's own query). ``retry`` is the
        dispatcher's retry rule: an admin may redeliver a pending delivery once it is
        stalled by that rule."""
        super().__init__(env)
        self.url_policy = url_policy
        self.clock = clock
        self.retry = retry
        self.render_test_event = render_test_event
        self.personal_data = personal_data(self)  # before the catalog, which reads it
        self.catalog = catalog(self)
        self.many_aggregates = many_aggregates(self)
        # API keys are read on every Public API request: decoded once, checked for
        # newer events on every read (see domain/fast_forward.py).
        probe = newer_events_probe(self)  # one per application: it prepares per connection
        self.key_reads = FastForwardReads(self, has_newer_events=probe)
        # Jobs and candidates are read by the Public API's GETs the same way.
        self.record_reads = FastForwardReads(self, has_newer_events=probe)

    # -- organizations and admin tokens -------------------------------------------

    def create_organization(self, name: str, by: Actor) -> tuple[Organization, str]:
        """Create an organization and its first admin token; return the token once."""
        organization = Organization(name=name, actor=by)
        token, plaintext = _mint_admin_token(organization.id, FIRST_TOKEN_NAME, by)
        self.save(organization, token)
        return organization, plaintext

    def get_organization(self, org_id: UUID) -> Organization:
        return self._get(Organization, org_id)

    def list_organizations(self) -> list[Organization]:
        """Every organization, oldest first (for the operator)."""
        return [self.get_organization(org_id) for org_id in self.catalog.organization_ids()]

    def issue_admin_token(self, org_id: UUID, name: str, by: Actor) -> tuple[AdminToken, str]:
        """Issue another admin token for an organization (by one of its admins, or by the
        operator to recover a lost one); return it and its plaintext, shown once."""
        self.get_organization(org_id)  # NotFound for an organization that does not exist
        name = _checked_name(name)
        token, plaintext = _mint_admin_token(org_id, name, by)
        self.save(token)
        return token, plaintext

    def list_admin_tokens(self, org_id: UUID) -> list[AdminToken]:
        """The organization's admin tokens, newest first."""
        ids: list[UUID] = []
        cursor: str | None = None
        while True:
            page, cursor = page_of_ids(self.catalog, org_id, "AdminToken", 100, cursor)
            ids += page
            if cursor is None:
                return self._get_many(AdminToken, org_id, ids)

    def get_admin_token(self, org_id: UUID, token_id: UUID) -> AdminToken:
        return self._get_owned(AdminToken, org_id, token_id)

    def revoke_admin_token(self, org_id: UUID, token_id: UUID, by: Actor) -> AdminToken:
        """Revoke an admin token for good; revoking it again changes nothing. The
        organization's last active token cannot be revoked (Conflict): issue another
        first. Two revocations at once collide on the organization (see
        Organization.note_admin_token_revoked); the loser reads again."""
        for attempt in range(5):
            # The organization first: a revocation saved after this read moves its
            # version, so ours conflicts; one saved before it is in the tokens read next.
            organization = self.get_organization(org_id)
            token = self.get_admin_token(org_id, token_id)
            if token.revoked:
                return token
            others = [t for t in self.list_admin_tokens(org_id) if t.id != token.id]
            if not any(other.status == "active" for other in others):
                raise Conflict(
                    f"The admin token {token.token_hint} is the organization's last active "
                    "one: issue another before revoking it."
                )
            token.revoke(actor=by)
            organization.note_admin_token_revoked(token_id=token.id, actor=by)
            try:
                self.save(token, organization)
            except RecordConflictError:
                if attempt == 4:
                    raise
                continue
            return token
        raise AssertionError("unreachable")

    def has_organizations(self) -> bool:
        return bool(self.recorder.max_notification_id())

    def authenticate_admin(self, token: str) -> tuple[UUID, Actor]:
        """Return the organization an admin token acts for, and the actor it records."""
        refusal = refusals.malformed(token, refusals.ADMIN_TOKEN)
        if refusal is not None:
            raise refusal
        token_hash = credentials.hash_credential(token)
        try:
            admin_token = self._get(AdminToken, credentials.credential_id(token_hash))
        except NotFound:
            raise refusals.unknown(refusals.ADMIN_TOKEN) from None
        if not credentials.same_hash(admin_token.token_hash, token_hash):
            raise refusals.unknown(refusals.ADMIN_TOKEN)
        if admin_token.revoked:
            raise refusals.revoked(refusals.ADMIN_TOKEN, admin_token.token_hint, None)
        return admin_token.org_id, actor("admin_token", admin_token.id)

    def authenticate_admin_token_id(self, token_id: UUID) -> tuple[UUID, Actor]:
        """As ``authenticate_admin``, for a signed session that keeps only the token's id."""
        try:
            admin_token = self._get(AdminToken, token_id)
        except NotFound:
            raise refusals.unknown(refusals.ADMIN_TOKEN) from None
        if admin_token.revoked:
            raise refusals.revoked(refusals.ADMIN_TOKEN, admin_token.token_hint, None)
        return admin_token.org_id, actor("admin_token", admin_token.id)

    # -- API keys -------------------------------------------------------------------

    def create_api_key(
        self, org_id: UUID, name: str, expires_at: datetime | None, by: Actor
    ) -> tuple[ApiKey, str]:
        """Create a named key; return it and its plaintext, which is never shown again."""
        name = _checked_name(name)
        if expires_at is not None:
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=UTC)
            if expires_at <= self.clock():
                raise InvalidInput("Expiry must be in the future.", field="expires_at")
        minted = credentials.mint(credentials.API_KEY_PREFIX)
        key = ApiKey(
            org_id=org_id,
            name=name,
            key_hash=minted.hash,
            key_hint=minted.hint,
            expires_at=expires_at,
            actor=by,
        )
        self.save(key)
        return key, minted.plaintext

    def get_api_key(self, org_id: UUID, key_id: UUID) -> ApiKey:
        return self._get_owned(ApiKey, org_id, key_id)

    def list_api_keys(
        self, org_id: UUID, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[ApiKey], str | None]:
        """A page of the organization's keys, newest first, and the next page's cursor."""
        ids, next_cursor = page_of_ids(self.catalog, org_id, "ApiKey", limit, cursor)
        return self._get_many(ApiKey, org_id, ids), next_cursor

    def revoke_api_key(self, org_id: UUID, key_id: UUID, by: Actor) -> ApiKey:
        """Revoke a key for good; revoking it again, even concurrently, changes nothing."""
        for attempt in range(5):
            key = self.get_api_key(org_id, key_id)
            key.revoke(now=self.clock(), actor=by)
            try:
                self.save(key)
            except RecordConflictError:
                if attempt == 4:
                    raise
                continue  # changed meanwhile (e.g. revoked by another request): read again
            return key
        raise AssertionError("unreachable")

    def roll_api_key(
        self, org_id: UUID, key_id: UUID, expires_in_hours: float, by: Actor
    ) -> tuple[ApiKey, str]:
        """Replace a key without downtime: a new key of the same name and no expiry,
        returned with its plaintext (shown once); the old key works for
        ``expires_in_hours`` more (never past its own expiry), then is refused. Both are
        saved at once."""
        if not 0 <= expires_in_hours <= ROLL_OVERLAP_HOURS_MAX:
            raise InvalidInput(
                f"expires_in_hours must be 0 to {ROLL_OVERLAP_HOURS_MAX}.",
                field="expires_in_hours",
            )
        old = self.get_api_key(org_id, key_id)
        now = self.clock()
        minted = credentials.mint(credentials.API_KEY_PREFIX)
        new = ApiKey(
            org_id=org_id,
            name=old.name,
            key_hash=minted.hash,
            key_hint=minted.hint,
            expires_at=None,  # the new key lasts until it is revoked, or rolled in turn
            actor=by,
            rolled_from=old.id,
        )
        old.roll(now=now, overlap=timedelta(hours=expires_in_hours), rolled_to=new.id, actor=by)
        self.save(old, new)  # a concurrent roll or revoke of the old key conflicts: 409
        return new, minted.plaintext

    def rename_api_key(self, org_id: UUID, key_id: UUID, name: str, by: Actor) -> ApiKey:
        key = self.get_api_key(org_id, key_id)
        key.rename(name=_checked_name(name), actor=by)
        self.save(key)
        return key

    def authenticate_api_key(self, presented: str) -> ApiKey:
        """Return the active key matching the presented plaintext, else raise Unauthorized
        saying which mistake it is (domain/credential_refusals.py: a key that is not
        stored gets one answer, whatever it is)."""
        refusal = refusals.malformed(presented, refusals.API_KEY)
        if refusal is not None:
            raise refusal
        key_hash = credentials.hash_credential(presented)
        try:
            key = self.key_reads.get(ApiKey, credentials.credential_id(key_hash))
        except NotFound:
            raise refusals.unknown(refusals.API_KEY) from None
        if not credentials.same_hash(key.key_hash, key_hash):
            raise refusals.unknown(refusals.API_KEY)
        status = key.status(self.clock())
        if status == "revoked":
            raise refusals.revoked(refusals.API_KEY, key.key_hint, key.revoked_at)
        if status == "expired" and key.expires_at is not None:
            raise refusals.expired(refusals.API_KEY, key.key_hint, key.expires_at)
        return key

    # -- webhook ---------------------------------------------------------------------

    def get_webhook(self, org_id: UUID) -> Webhook:
        webhook = self._get(Webhook, webhook_id(org_id))
        if webhook.deleted:
            raise NotFound("webhook")
        return webhook

    def configure_webhook(
        self, org_id: UUID, url: str, secret: str | None, enabled: bool, by: Actor
    ) -> tuple[Webhook, bool]:
        """Create or replace the webhook (PUT); return it and whether it was created."""
        self.url_policy.check(url)
        _check_secret(secret)
        try:
            webhook = self._get(Webhook, webhook_id(org_id))
        except NotFound:
            webhook = Webhook(org_id=org_id, url=url, secret=secret, enabled=enabled, actor=by)
            created = True
        else:
            created = webhook.deleted
            webhook.replace(url=url, secret=secret, enabled=enabled, actor=by)
        self.save(webhook)
        return webhook, created

    def change_webhook(
        self,
        org_id: UUID,
        by: Actor,
        url: str | None = None,
        secret: str | None = UNSET,
        enabled: bool | None = None,
    ) -> Webhook:
        """Change some of the webhook's fields (PATCH); ``secret=None`` removes it."""
        webhook = self.get_webhook(org_id)
        if url is not None:
            self.url_policy.check(url)
        if secret is not UNSET:
            _check_secret(secret)
        webhook.change(
            actor=by,
            url=url,
            secret=None if secret is UNSET else secret,
            remove_secret=secret is None,
            enabled=enabled,
        )
        self.save(webhook)
        return webhook

    def rotate_webhook_secret(
        self,
        org_id: UUID,
        by: Actor,
        secret: str | None = None,
        overlap_hours: int = DEFAULT_OVERLAP_HOURS,
    ) -> tuple[Webhook, str | None, datetime | None]:
        """Replace the webhook's secret, the current one still signing deliveries for
        ``overlap_hours`` (SPEC 9). Return the webhook, the secret when it was generated
        (``secret`` None: shown once), and when the previous secret stops signing (None
        when there was no secret before; now when ``overlap_hours`` is 0)."""
        webhook = self.get_webhook(org_id)
        if not 0 <= overlap_hours <= MAX_OVERLAP_HOURS:
            raise InvalidInput(
                f"Overlap must be 0 to {MAX_OVERLAP_HOURS} hours.", field="overlap_hours"
            )
        generated = None
        if secret is None:
            secret = generated = generate_secret()
        _check_secret(secret)
        if secret == webhook.secret:
            raise InvalidInput(
                "That is the current secret: give another one, or none to have one generated.",
                field="secret",
            )
        now = self.clock()
        expires_at = now + timedelta(hours=overlap_hours)
        had_secret = webhook.secret is not None
        webhook.rotate_secret(secret, previous_secret_expires_at=expires_at, now=now, actor=by)
        self.save(webhook)
        return webhook, generated, expires_at if had_secret else None

    def forget_expired_previous_secret(self, org_id: UUID, by: Actor) -> bool:
        """Record ``PreviousSecretForgotten`` once a rotation's overlap has ended; whether
        it was recorded now (False: nothing to forget, or another process just did)."""
        try:
            webhook = self._get(Webhook, webhook_id(org_id))
        except NotFound:
            return False
        if not webhook.forget_previous_secret(self.clock(), actor=by):
            return False
        try:
            self.save(webhook)
        except RecordConflictError:
            return False  # changed meanwhile; whoever changed it ended or will end it
        return True

    def delete_webhook(self, org_id: UUID, by: Actor) -> None:
        webhook = self.get_webhook(org_id)
        webhook.delete(actor=by)
        self.save(webhook)

    # -- event history ---------------------------------------------------------------

    def event_history(
        self,
        org_id: UUID,
        after: int = 0,
        limit: int = 100,
        type: str | None = None,
        aggregate_id: UUID | None = None,
        types: Sequence[str] | None = None,
        before: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """The organization's events after a position (and before one), oldest first or
        newest first, of a type or any of ``types``; secrets redacted."""
        self.catalog.wait_for_writes(org_id)
        return self.catalog.events(
            org_id,
            after=after,
            limit=limit,
            type=type,
            aggregate_id=aggregate_id,
            types=types,
            before=before,
            newest_first=newest_first,
        )

    def event_history_head(self, org_id: UUID) -> tuple[int, str]:
        """(position, hash) of the newest item of the organization's history chain."""
        self.catalog.wait_for_writes(org_id)
        return self.catalog.head(org_id)

    # -- saving and closing ----------------------------------------------------------

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Save, then note each organization's newest position for the catalog (so the
        organization's next read waits for it) before returning to the writer."""
        recordings = super().save(*objs, **kwargs)
        org_of = {
            aggregate.id: getattr(aggregate, "org_id", aggregate.id)
            for aggregate in objs
            if isinstance(aggregate, Aggregate)
        }
        marks: dict[UUID, int] = {}
        for recording in recordings:
            org_id = org_of.get(recording.domain_event.originator_id)
            if org_id is not None:
                marks[org_id] = max(marks.get(org_id, 0), recording.notification.id)
        self.catalog.note_writes(marks)
        return recordings

    def close(self) -> None:
        self.catalog.close()
        super().close()

    # -- helpers ---------------------------------------------------------------------

    def _get_many(self, cls: type[A], org_id: UUID, ids: Sequence[UUID]) -> list[A]:
        """The organization's aggregates of a page, in the page's order, read at once."""
        found = self.many_aggregates.get_many(ids)
        return [
            aggregate
            for aggregate in (found.get(aggregate_id) for aggregate_id in ids)
            if isinstance(aggregate, cls) and getattr(aggregate, "org_id", None) == org_id
        ]

    def _get(self, cls: type[A], aggregate_id: UUID) -> A:
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(cls.__name__) from None
        if not isinstance(aggregate, cls):
            raise NotFound(cls.__name__)
        return aggregate

    def _get_owned(self, cls: type[A], org_id: UUID, aggregate_id: UUID) -> A:
        """Get an aggregate of the organization; another organization's is not found."""
        return _owned_by(org_id, self._get(cls, aggregate_id))

    def _read_owned(self, cls: type[A], org_id: UUID, aggregate_id: UUID) -> A:
        """``_get_owned`` for reading only: a shared decoded copy, never to be changed."""
        return _owned_by(org_id, self.record_reads.get(cls, aggregate_id))


def _owned_by(org_id: UUID, aggregate: A) -> A:
    if getattr(aggregate, "org_id", None) != org_id:
        raise NotFound(type(aggregate).__name__)
    return aggregate


def _checked_name(name: str) -> str:
    """A key's or token's name, trimmed: 1 to 100 characters."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("Name must be 1 to 100 characters.", field="name")
    return name


def _mint_admin_token(org_id: UUID, name: str, by: Actor) -> tuple[AdminToken, str]:
    minted = credentials.mint(credentials.ADMIN_TOKEN_PREFIX)
    token = AdminToken(
        org_id=org_id, token_hash=minted.hash, token_hint=minted.hint, actor=by, name=name
    )
    return token, minted.plaintext


def _check_secret(secret: str | None) -> None:
    problem = None if secret is None else secret_problem(secret)
    if problem is not None:
        raise InvalidInput(problem, field="secret")
