"""The dispatcher's group Committer on a real PostgreSQL behind a fault proxy: a commit
whose reply is lost (it went through; the client cannot know) is resolved by reading
the store, never taken for another dispatcher's write (SPEC 11); a real conflict is
still reported."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from eventsourcing.persistence import IntegrityError

from domain.actors import DISPATCHER
from domain.application import DeveloperTools
from domain.deliveries import Delivery
from services.bootstrap import build_application
from services.dispatcher.committer import Committer, CommitterClosed
from tests.support.dispatching import make_settings
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgres_url)
    with TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as running:
        yield running


@pytest.fixture
def application(tmp_path, postgres_url: str, proxy: TcpProxy) -> Iterator[DeveloperTools]:
    parts = urlsplit(postgres_url)
    through_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    settings = make_settings(
        tmp_path, f"filesystem://{tmp_path}/broker", None, database_url=through_proxy
    )
    application = build_application(settings)
    yield application
    application.close()


def new_delivery(org_id: uuid.UUID, event_id: str) -> Delivery:
    return Delivery(
        org_id=org_id,
        event_id=event_id,
        event_type="interview.completed",
        url="https://hooks.example.com/a",
        body="{}",
        actor=DISPATCHER,
    )


def test_a_commit_whose_reply_was_lost_is_found_stored(application, proxy):
    committer = Committer(application)
    try:
        org_id = uuid.uuid4()
        deliveries = [new_delivery(org_id, f"evt-{n}") for n in range(3)]
        proxy.drop_reply_to(b"COMMIT", b"COMMIT")

        committer.save(deliveries[0])  # no error: its events are in the store
        committer.save(*deliveries[1:])

        assert proxy.counts.dropped_replies == 1
        for delivery in deliveries:
            stored = application.repository.get(delivery.id)
            assert (stored.version, stored.event_id) == (1, delivery.event_id)
    finally:
        committer.close()


def test_a_real_conflict_is_still_reported(application, proxy):
    committer = Committer(application)
    try:
        org_id = uuid.uuid4()
        committer.save(new_delivery(org_id, "evt-1"))

        with pytest.raises(IntegrityError):
            committer.save(new_delivery(org_id, "evt-1"))  # other bytes at version 1
    finally:
        committer.close()


def test_a_store_lost_while_an_ambiguous_commit_is_checked_is_waited_for(application, proxy):
    """The reply to the COMMIT is lost, and so are the replies to every read that would
    tell whether it went through (eventsourcing reads 10 times, then gives up): the
    committer waits for the store like for any outage and finds the events stored. It
    once let that error end its thread, and every later save waited forever."""
    committer = Committer(application, longest_backoff=0.2)
    try:
        delivery = new_delivery(uuid.uuid4(), "evt-1")
        proxy.drop_reply_to(b"COMMIT", b"COMMIT")
        proxy.drop_reply_to(b"ORDER BY originator_version", b"SELECT", times=10)
        saving = threading.Thread(target=committer.save, args=(delivery,), daemon=True)
        saving.start()
        saving.join(timeout=60)

        assert not saving.is_alive(), "the save never returned"
        assert proxy.counts.dropped_replies == 11
        assert application.repository.get(delivery.id).version == 1
        later = new_delivery(uuid.uuid4(), "evt-2")
        committer.save(later)  # the committer still saves
        assert application.repository.get(later.id).version == 1
    finally:
        committer.close()


def test_save_then_settles_each_save_on_the_committer_thread(application, proxy):
    """The dispatcher's workers do not wait for their saves: each outcome comes back to
    a continuation, run by the committer once the batch is settled."""
    committer = Committer(application)
    outcomes: queue.SimpleQueue[tuple[str, str, BaseException | None]] = queue.SimpleQueue()

    def then(name: str) -> Callable[[BaseException | None], None]:
        return lambda error: outcomes.put((name, threading.current_thread().name, error))

    try:
        org_id = uuid.uuid4()
        first = new_delivery(org_id, "evt-1")
        committer.save_then(first, then("first"))
        assert outcomes.get(timeout=30) == ("first", "tenzo-committer", None)
        committer.save_then(new_delivery(org_id, "evt-1"), then("conflicting"))
        name, _, error = outcomes.get(timeout=30)

        assert name == "conflicting" and isinstance(error, IntegrityError)
        assert application.repository.get(first.id).event_id == "evt-1"
    finally:
        committer.close()
    with pytest.raises(CommitterClosed):
        committer.save_then(new_delivery(org_id, "evt-2"), then("too late"))


def test_a_continuation_that_raises_does_not_stop_the_committer(application, proxy, caplog):
    committer = Committer(application)
    try:
        delivery = new_delivery(uuid.uuid4(), "evt-1")

        def broken(error: BaseException | None) -> None:
            raise RuntimeError("a broken continuation")

        committer.save_then(delivery, broken)
        later = new_delivery(uuid.uuid4(), "evt-2")
        saving = threading.Thread(target=committer.save, args=(later,), daemon=True)
        saving.start()
        saving.join(timeout=30)

        assert not saving.is_alive(), "the committer stopped saving"

        assert application.repository.get(delivery.id).version == 1
        assert application.repository.get(later.id).version == 1
        assert "a save's continuation failed" in caplog.text
    finally:
        committer.close()
