"""What the history's hash chain and the per-candidate keys cost (issue 18, item 4).

Three measurements on PostgreSQL, each against a baseline measured in the same run, in
alternating rounds (the ratio is the median of adjacent pairs' ratios: the machine is
shared, and its speed drifts):

  1. The chain. ``--events`` events (jobs and candidates of ``--orgs`` organizations)
     are written through the application on a fresh database. (a) Linking them
     (contracts/audit_chain.py ``link``: the splice and the SHA-256, per organization in
     position order) against producing the items themselves (``audit_item`` and the
     ``unlinked`` encoding of the stored, sealed events), µs per event. (b) The
     catalog's follower catching up on the whole backlog, as it does in production
     (``apply_next_batch`` until caught up, its read-ahead thread included), against
     the same follower with ``link`` made a no-op in this process only (the halves
     joined, no hash): events/s. Between rounds the catalog's tables are emptied and its
     position set to 0.
  2. Creating a candidate: the application's ``upsert_candidate`` (what ``POST
     /v1/candidates`` runs under its HTTP layer) with the ``SealingMapper``, against an
     application built the same way but with eventsourcing's default mapper
     (``MAPPER_TOPIC``), each on a fresh database of its own: µs per candidate.
  3. Delivery. (a) What the dispatcher does for a new interview delivery: one
     projection query for a batch of 100 messages (``interview_contexts``, which opens
     the candidates' sealed fields), the body (``interview_completed_body``) and the
     save of ``DeliveryScheduled`` (its body sealed under the candidate's key);
     (b) loading a stored delivery for a retry or a redelivery (its body opened).
     Against the same with the default mapper and the projection's keys replaced, in
     this process only, by a stand-in that keeps values as they are. The dispatcher is
     an application of its own (as the process of `tenzo dispatcher` is): each delivery
     is about a candidate it has not sealed for before.

Run it with `.venv/bin/python bench/history_costs.py` (PostgreSQL from
TENZO_BENCH_POSTGRES_URL, as bench/public_api.py); it writes the figures into
docs/benchmarks.md between its markers (unless ``--no-docs``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.public_api import fresh_database, machine, write_docs  # noqa: E402
from contracts.audit import audit_item  # noqa: E402
from contracts.audit_chain import GENESIS, link, unlinked, verify  # noqa: E402
from contracts.broker import parse_interview_completed  # noqa: E402
from domain.actors import OPERATOR, actor  # noqa: E402
from domain.application import DeveloperTools  # noqa: E402
from domain.deliveries import Delivery, delivery_id  # noqa: E402
from domain.organizations import Organization  # noqa: E402
from domain.recruiting import Candidate, Job  # noqa: E402
from domain.webhooks import Webhook  # noqa: E402
from services.bootstrap import build_application  # noqa: E402
from services.dispatcher.new_deliveries import NewDeliveries  # noqa: E402
from services.dispatcher.projection import DispatchProjection, InterviewRef  # noqa: E402
from services.infrastructure import catalog_follower  # noqa: E402
from services.infrastructure.catalog_follower import CatalogFollower  # noqa: E402
from services.infrastructure.personal_data import sealed_decoder  # noqa: E402
from services.settings import Settings  # noqa: E402

START, END = "<!-- history_costs:start -->", "<!-- history_costs:end -->"
COMMAND = ".venv/bin/python bench/history_costs.py"
DEFAULT_MAPPER = "eventsourcing.persistence:Mapper"
BATCH = 100  # interview messages per projection query (services/dispatcher/receiving.py)
MODES = ("sealed", "plain")


class PlainSettings(Settings):
    """The same configuration with eventsourcing's default mapper: nothing sealed."""

    def eventsourcing_env(self) -> dict[str, str]:
        return super().eventsourcing_env() | {"MAPPER_TOPIC": DEFAULT_MAPPER}


class PlainPersonalData:
    """The dispatcher projection's keys, for the baseline: values kept as they are."""

    def seal(self, subject: str, field: str, value: str) -> str:
        return value

    def open_many(self, tokens: Iterable[str]) -> dict[str, str | None]:
        return {token: token for token in tokens}


def no_link(parts: tuple[str, str], previous_hash: str) -> tuple[str, str]:
    """``link`` made a no-op: the item's halves joined, no previous hash, no SHA-256."""
    before, after = parts
    comma = "," if before != "{" and after != "}" else ""
    return previous_hash, f"{before}{comma}{after}"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TENZO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--events", type=int, default=20_000, help="the chain's backlog")
    parser.add_argument("--orgs", type=int, default=10, help="organizations of the backlog")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each mode")
    parser.add_argument("--candidates", type=int, default=300, help="candidates per round")
    parser.add_argument("--deliveries", type=int, default=300, help="deliveries per round")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    return parser.parse_args()


def settings_for(database: str, mode: str) -> Settings:
    key = base64.b64encode(os.urandom(32)).decode()
    cls = Settings if mode == "sealed" else PlainSettings
    return cls(database_url=database, encryption_key=key)


@dataclass
class Paired:
    """Per-round figures of a measurement and its baseline (lower is better)."""

    name: str
    unit: str
    measured: list[float]
    baseline: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(m / b for m, b in zip(self.measured, self.baseline, strict=True))


def alternate(rounds: int, first: Callable[[], float], second: Callable[[], float]):
    """``rounds`` pairs of (first, second), run first-second then second-first, …"""
    ones, twos = [], []
    for number in range(rounds):
        if number % 2 == 0:
            ones.append(first())
            twos.append(second())
        else:
            twos.append(second())
            ones.append(first())
    return ones, twos


# -- 1. the chain -----------------------------------------------------------------------


def chain_costs(args: argparse.Namespace) -> dict[str, Any]:
    database, drop = fresh_database(args.postgres_url)
    app = build_application(settings_for(database, "sealed"))
    try:
        started = time.perf_counter()
        write_backlog(app, args.events, args.orgs)
        written = time.perf_counter() - started
        end = app.recorder.max_notification_id() or 0
        print(f"chain: {end} events written through the application in {written:.1f} s")
        catalog: Any = app.catalog
        catalog.follower.close()  # the rounds below follow the log themselves
        decode = sealed_decoder(app)
        events: list[tuple[int, str, Any]] = []
        for first in range(1, end + 1, 2000):
            for n in app.recorder.select_notifications(start=first, limit=2000):
                event = decode(n)
                org_id = str(getattr(event, "org_id", None) or event.originator_id)
                events.append((n.id, org_id, event))

        items: list[tuple[int, str, tuple[str, str]]] = []

        def produce() -> float:
            items.clear()
            began = time.perf_counter()
            for position, org_id, event in events:
                items.append((position, org_id, unlinked(audit_item(event, position))))
            return (time.perf_counter() - began) / len(events) * 1e6

        def chain() -> float:
            heads: dict[str, str] = {}
            began = time.perf_counter()
            for _, org_id, parts in items:
                heads[org_id] = link(parts, heads.get(org_id, GENESIS))[0]
            return (time.perf_counter() - began) / len(items) * 1e6

        produce()
        sizes = [len(link(parts, GENESIS)[1]) for _, _, parts in items]
        linking, producing = alternate(args.rounds, chain, produce)

        def follow(linker: Callable[..., tuple[str, str]]) -> float:
            with catalog.tables.transaction() as cursor:
                cursor.execute("TRUNCATE tenzo_catalog, tenzo_audit, tenzo_audit_heads")
                catalog.position.set(cursor, 0)
            catalog_follower.link = linker
            follower = CatalogFollower(app, catalog.tables, catalog.position, health=catalog.health)
            try:
                began = time.perf_counter()
                while follower.apply_next_batch():
                    pass
                took = time.perf_counter() - began
            finally:
                follower.close()
                catalog_follower.link = link
            if catalog.position.read() != end:
                sys.exit(f"the follower stopped at {catalog.position.read()} of {end}")
            return end / took

        follow(link)  # warm-up
        linked, unlinked_rates = alternate(
            args.rounds, lambda: follow(link), lambda: follow(no_link)
        )
        verify_chain(catalog)
        return {
            "events": end,
            "orgs": args.orgs,
            "written": written,
            "item_bytes": statistics.mean(sizes),
            "link": Paired("link", "µs/event", linking, producing),
            # events/s: higher is better; ratio = linked / no-op
            "follow": Paired("follow", "events/s", linked, unlinked_rates),
        }
    finally:
        app.close()
        drop()


def write_backlog(app: DeveloperTools, count: int, orgs: int) -> None:
    """``count`` events: jobs, and candidates of those jobs (their personal fields sealed
    by the mapper), 1,000 a save, spread over ``orgs`` organizations."""
    org_ids = [app.create_organization(f"Org {n}", OPERATOR)[0].id for n in range(orgs)]
    made = 2 * orgs  # each organization's creation: two events
    number = 0
    while made < count:
        org_id = org_ids[number % orgs]
        pending: list[Any] = []
        for _ in range(min(500, (count - made + 1) // 2)):
            number += 1
            job = new_job(org_id, number)
            pending += [job, new_candidate(org_id, job.id, number)]
        app.save(*pending)
        made += len(pending)


def new_job(org_id: uuid.UUID, number: int) -> Job:
    return Job(
        org_id=org_id,
        external_id=f"job-{number}",
        title="Backend engineer",
        description="Builds the platform's event store and its APIs.",
        location="Berlin",
        department="Engineering",
        employment_type="full_time",
        status="open",
        actor=OPERATOR,
    )


def new_candidate(org_id: uuid.UUID, job_id: uuid.UUID, number: int) -> Candidate:
    return Candidate(
        org_id=org_id,
        job_id=job_id,
        external_id=f"cand-{number}",
        first_name="Ada",
        last_name=f"Lovelace {number}",
        email=f"ada.lovelace.{number}@example.com",
        phone="+44 20 7946 0958",
        resume_url=f"https://cv.example.com/ada-{number}.pdf",
        actor=OPERATOR,
    )


def verify_chain(catalog: Any) -> None:
    """The last round linked for real: its chains verify (the no-op ran before it)."""
    rows = catalog.tables.read("SELECT org_id, item FROM tenzo_audit ORDER BY position")
    by_org: dict[str, list[str]] = {}
    for row in rows:
        by_org.setdefault(row["org_id"], []).append(row["item"])
    for org_id, lines in by_org.items():
        verdict = verify(lines)
        if not verdict.ok:
            sys.exit(f"the chain of {org_id} does not verify: {verdict}")


# -- 2. creating candidates --------------------------------------------------------------


@dataclass
class Side:
    """One mode's databases and applications for parts 2 and 3."""

    mode: str
    app: DeveloperTools
    dispatcher: DeveloperTools
    projection: DispatchProjection
    org_id: uuid.UUID
    job_id: uuid.UUID
    candidates: list[uuid.UUID]
    drop: Callable[[], None]
    created: int = 0
    delivered: int = 0
    loaded: list[uuid.UUID] | None = None

    def close(self) -> None:
        self.dispatcher.close()
        self.app.close()
        self.drop()


def make_side(args: argparse.Namespace, mode: str) -> Side:
    database, drop = fresh_database(args.postgres_url)
    settings = settings_for(database, mode)
    app = build_application(settings)
    organization = Organization(name=f"Bench {mode}", actor=OPERATOR)
    webhook = Webhook(
        org_id=organization.id,
        url="https://hooks.example.com/tenzo",
        secret="bench-secret",
        enabled=True,
        actor=OPERATOR,
    )
    job = new_job(organization.id, 0)
    app.save(organization, webhook, job)
    # The deliveries' candidates: one delivery each (warm-up included).
    wanted = (args.rounds + 1) * args.deliveries
    candidates = [new_candidate(organization.id, job.id, n) for n in range(wanted)]
    for first in range(0, wanted, 500):
        app.save(*candidates[first : first + 500])
    dispatcher = build_application(settings)  # the dispatcher's process: its own keys
    projection = DispatchProjection(dispatcher)
    if mode == "plain":
        projection._personal = PlainPersonalData()  # type: ignore[assignment]
    projection.rebuild()
    return Side(
        mode,
        app,
        dispatcher,
        projection,
        organization.id,
        job.id,
        [c.id for c in candidates],
        drop,
    )


def create_candidates(side: Side, count: int) -> float:
    """µs per candidate created with ``upsert_candidate``."""
    by = actor("api_key", None)
    began = time.perf_counter()
    for _ in range(count):
        side.created += 1
        number = side.created
        fields = {
            "job_id": side.job_id,
            "external_id": f"new-{number}",
            "first_name": "Grace",
            "last_name": f"Hopper {number}",
            "email": f"grace.hopper.{number}@example.com",
            "phone": "+1 202 555 0143",
            "resume_url": f"https://cv.example.com/grace-{number}.pdf",
        }
        _, created = side.app.upsert_candidate(side.org_id, fields, by)
        assert created
    return (time.perf_counter() - began) / count * 1e6


# -- 3. delivery -------------------------------------------------------------------------


def interview_message(org_id: uuid.UUID, candidate_id: uuid.UUID, job_id: uuid.UUID) -> str:
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": "interview.completed",
            "occurred_at": now,
            "org_id": str(org_id),
            "data": {
                "interview_id": f"int_{event_id[:8]}",
                "candidate_id": str(candidate_id),
                "job_id": str(job_id),
                "completed_at": now,
                "duration_seconds": 1260,
                "score": 87.5,
                "recommendation": "yes",
                "summary": "Clear communicator; strong on systems design. " * 4,
                "transcript_url": f"https://transcripts.example.com/{event_id}",
            },
        }
    )


def deliver(side: Side, count: int) -> float:
    """µs per new interview delivery: message parsed, projection read (a batch of
    ``BATCH``), body rendered, ``DeliveryScheduled`` saved (no HTTP request)."""
    first = side.delivered
    side.delivered += count
    candidates = side.candidates[first : first + count]
    messages = [interview_message(side.org_id, c, side.job_id) for c in candidates]
    new_deliveries = NewDeliveries(side.projection)
    made: list[uuid.UUID] = []
    began = time.perf_counter()
    for start in range(0, count, BATCH):
        parsed = [parse_interview_completed(m) for m in messages[start : start + BATCH]]
        refs = [
            InterviewRef(
                p["org_id"],
                p["data"]["candidate_id"],
                p["data"]["job_id"],
                delivery_id(p["org_id"], p["event_id"]),
            )
            for p in parsed
        ]
        contexts = side.projection.interview_contexts(refs)
        read_at = time.monotonic()
        deliveries = []
        for p, ref, context in zip(parsed, refs, contexts, strict=True):
            job: Any = _Job()
            delivery = new_deliveries.for_interview(p, job, ref, context, read_at)
            assert delivery is not None and "first_name" in delivery.body
            deliveries.append(delivery)
        side.dispatcher.save(*deliveries)
        made += [d.id for d in deliveries]
    took = (time.perf_counter() - began) / count * 1e6
    side.loaded = made
    return took


class _Job:
    """What ``NewDeliveries.for_interview`` uses of a DeliveryJob."""

    def remember_target(self, target: Any, read_at: float) -> None:
        pass


def load_deliveries(side: Side) -> float:
    """µs per stored delivery loaded (a retry, a redelivery: the runner's ``load``)."""
    ids = side.loaded or []
    began = time.perf_counter()
    for delivery in ids:
        loaded: Any = side.dispatcher.repository.get(delivery)
        assert isinstance(loaded, Delivery) and "first_name" in loaded.body
    return (time.perf_counter() - began) / len(ids) * 1e6


def personal_costs(args: argparse.Namespace) -> dict[str, Any]:
    sides: dict[str, Side] = {}
    try:
        for mode in MODES:
            sides[mode] = make_side(args, mode)
        sealed, plain = sides["sealed"], sides["plain"]
        print("candidates: warming up")
        for side in (sealed, plain):
            create_candidates(side, max(20, args.candidates // 10))
        candidates = alternate(
            args.rounds,
            lambda: create_candidates(sealed, args.candidates),
            lambda: create_candidates(plain, args.candidates),
        )
        print("deliveries: warming up")
        for side in (sealed, plain):
            deliver(side, args.deliveries)
            load_deliveries(side)
        delivering: tuple[list[float], list[float]] = ([], [])
        loading: tuple[list[float], list[float]] = ([], [])
        for number in range(args.rounds):
            order = (0, 1) if number % 2 == 0 else (1, 0)
            for index in order:
                delivering[index].append(deliver(sides[MODES[index]], args.deliveries))
            for index in reversed(order):
                loading[index].append(load_deliveries(sides[MODES[index]]))
        check_stored(sealed, plain)
        return {
            "create": Paired("create", "µs/candidate", *candidates),
            "deliver": Paired("deliver", "µs/delivery", *delivering),
            "load": Paired("load", "µs/delivery", *loading),
        }
    finally:
        for side in sides.values():
            side.close()


def check_stored(sealed: Side, plain: Side) -> None:
    """The sealed side stored no personal value in clear; the plain side did."""
    for side, expected in ((sealed, False), (plain, True)):
        stored = side.app.recorder.select_notifications(start=1, limit=1_000_000)
        decode = sealed_decoder(side.app)
        names = [
            getattr(decode(n), "first_name", None)
            for n in stored
            if n.topic == "domain.recruiting:Candidate.Created"
        ]
        if any(name is not None for name in names) != expected:
            sys.exit(f"{side.mode}: personal fields {'not ' if expected else ''}in clear")


# -- report -----------------------------------------------------------------------------


def per_round(values: list[float], digits: int = 1) -> str:
    return ", ".join(f"{value:,.{digits}f}" for value in values)


def summarize(chain: dict[str, Any], personal: dict[str, Any], args, load) -> str:
    link_, follow = chain["link"], chain["follow"]
    create, deliver_, load_ = personal["create"], personal["deliver"], personal["load"]

    def row(what: str, paired: Paired, digits: int = 0, difference: bool = True) -> str:
        m, b = statistics.median(paired.measured), statistics.median(paired.baseline)
        more = f"{m - b:+,.{digits}f}" if difference else "—"
        return (
            f"| {what} | {m:,.{digits}f} ({per_round(paired.measured, digits)}) | "
            f"{b:,.{digits}f} ({per_round(paired.baseline, digits)}) | {more} | "
            f"{paired.ratio:.2f} |"
        )

    follow_slower = 1 / follow.ratio - 1
    return "\n".join(
        [
            "## History trust and erasure: what the hash chain and per-candidate keys cost",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; load average "
            f"{load[0]:.1f} before, {load[1]:.1f} after (the machine is shared).",
            "",
            f"Reproduce: `{COMMAND}` (needs the PostgreSQL server of "
            "`TENZO_BENCH_POSTGRES_URL`, default `postgresql://postgres@127.0.0.1:5432/postgres`; "
            "each part on fresh databases, dropped afterwards).",
            "",
            f"Each figure is the median of {args.rounds} rounds (per round in brackets), "
            "measured and baseline alternately (baseline first in every other pair); the "
            "ratio is the median of the adjacent pairs' ratios. Wall-clock time in this "
            "process; the catalog's follower threads of the applications run beside it, "
            "as they do in production.",
            "",
            "### The chain, per event",
            "",
            f"Backlog: {chain['events']:,} events (jobs, and candidates with their personal "
            f"fields sealed) of {chain['orgs']} organizations, written through the application "
            f"in {chain['written']:.1f} s; items average {chain['item_bytes']:.0f} bytes linked.",
            "",
            "| | measured | baseline | difference | ratio |",
            "|---|---|---|---|---|",
            row(
                "µs per event: `link` (splice + SHA-256), vs producing the item "
                "(`audit_item` + `unlinked`, from the decoded event)",
                link_,
                2,
                difference=False,
            ),
            row(
                "the follower's catch-up, events/s: linking, vs `link` a no-op "
                "(halves joined, no hash)",
                follow,
            ),
            "",
            f"Linking costs {statistics.median(link_.measured):.2f} µs per event, "
            f"{link_.ratio:.2f} × producing the item it links; the follower catches up "
            f"{abs(follow_slower):.0%} {'slower' if follow_slower > 0 else 'faster'} with the "
            "chain than without it (the heads' one read and one upsert per batch are in both; "
            "linking runs in the batch's write transaction while the next batch is decoded "
            "in the read-ahead thread). API requests never hash.",
            "",
            "### Per-candidate keys",
            "",
            "Baseline: an application built the same way (`build_application`) with "
            "eventsourcing's default mapper (`MAPPER_TOPIC`), on a database of its own, and "
            "the dispatcher projection's keys replaced in this process by a stand-in that "
            "keeps values as they are: what the product did before per-candidate keys "
            "(personal fields encrypted with `TENZO_ENCRYPTION_KEY` only).",
            "",
            "| | measured (sealed) | baseline (not sealed) | difference | ratio |",
            "|---|---|---|---|---|",
            row(
                f"µs per candidate: `upsert_candidate` of a new candidate "
                f"({args.candidates} a round; the use case of `POST /v1/candidates`, "
                "without its HTTP layer, which seals nothing)",
                create,
            ),
            row(
                f"µs per new interview delivery ({args.deliveries} a round, messages "
                f"parsed, one projection query per {BATCH} with the candidates' fields "
                "opened, body rendered, `DeliveryScheduled` saved with its body sealed; "
                "no HTTP request)",
                deliver_,
            ),
            row(
                "µs per stored delivery loaded (a retry or a redelivery: its body opened)",
                load_,
            ),
            "",
            "Sealing a new candidate is one more statement (its key's `INSERT`, a "
            "transaction of its own) and five AES-GCM encryptions; a delivery opens the "
            "candidate's three projected fields (one read of the keys per batch), seals its "
            "body (a candidate the dispatcher has not sealed for: one `INSERT … ON CONFLICT "
            "DO NOTHING` and one read of the key) and stores a larger event (the token and "
            "the copy without personal fields); loading a delivery opens its body (one read "
            "of the keys). Checked after the rounds: the sealed store holds no candidate's "
            "name in clear, the baseline's does.",
        ]
    )


def main() -> None:
    args = arguments()
    load_before = os.getloadavg()[0]
    chain = chain_costs(args)
    print(
        f"link {statistics.median(chain['link'].measured):.2f} µs/event, "
        f"produce {statistics.median(chain['link'].baseline):.2f} µs/event; "
        f"follow {statistics.median(chain['follow'].measured):,.0f} vs "
        f"{statistics.median(chain['follow'].baseline):,.0f} events/s"
    )
    personal = personal_costs(args)
    report = summarize(chain, personal, args, (load_before, os.getloadavg()[0]))
    print(report)
    if not args.no_docs:
        write_docs(report, START, END)


if __name__ == "__main__":
    main()
