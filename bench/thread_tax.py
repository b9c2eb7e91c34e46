"""What running a delivery's work on many threads costs (issue 14: one dispatcher process).

The same work, in the same process, on 1 thread and on N threads at once: for each
delivery, what the dispatcher does apart from the broker and the event store's round
trips (its consumer thread validates the message, a worker thread does the rest) —
validate an ``interview.completed`` message, build the Delivery and its
payload, sign it, POST it over HTTPS (the dispatcher's WebhookSender, keep-alive) to
bench/dispatch.py's receiver (a process of its own), record the attempt and the
success, and encode the three events as the committer does (JSON, zlib, AES-GCM, the
personal data sealed). Reports CPU per delivery of this process and deliveries/s for
each thread count, rounds alternating, so the machine's drift falls on all of them.
Not a test: a measurement, printed.

    .venv/bin/python bench/thread_tax.py --threads 1,4,32 --deliveries 2400 --rounds 2
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dispatch  # noqa: E402
from contracts.broker import INTERVIEW_COMPLETED, parse_interview_completed  # noqa: E402
from contracts.webhook_payload import webhook_headers  # noqa: E402
from domain.actors import DISPATCHER  # noqa: E402
from domain.deliveries import Delivery  # noqa: E402
from services.dispatcher.delivery_runner import record_attempt  # noqa: E402
from services.dispatcher.payloads import interview_completed_body  # noqa: E402
from services.dispatcher.sender import DeliveryPolicy, WebhookSender  # noqa: E402
from services.infrastructure.personal_data import sealing_encoder  # noqa: E402

ORG = dispatch.Org(uuid.uuid4(), job_id=uuid.uuid4(), candidate_id=uuid.uuid4())
CANDIDATE = {
    "id": str(ORG.candidate_id),
    "external_id": "cand-1",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
}
JOB = {"id": str(ORG.job_id), "external_id": "job-1", "title": "Engineer"}


def delivery_work(
    url: str, sender: WebhookSender, encode: Callable[..., object]
) -> Callable[[bytes], None]:
    """One delivery's work, as the dispatcher does it (see the module's docstring)."""

    def deliver(body: bytes) -> None:
        parsed = parse_interview_completed(body)
        delivery = Delivery(
            org_id=parsed["org_id"],
            event_id=parsed["event_id"],
            event_type=INTERVIEW_COMPLETED,
            url=url,
            body=interview_completed_body(parsed, CANDIDATE, JOB),
            actor=DISPATCHER,
        )
        payload = delivery.body.encode()
        headers = webhook_headers(
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            attempt=1,
            timestamp=int(time.time()),
            body=payload,
            secret="whsec_bench",
            version="bench",
            previous_secret=None,
        )
        result = sender.send(url, payload, headers)
        if not result.succeeded:
            raise RuntimeError(f"the receiver refused a delivery: {result.error}")
        record_attempt(delivery, result)
        delivery.succeed(actor=DISPATCHER)
        for event in delivery.collect_events():
            encode(event)

    return deliver


def timed(
    deliver: Callable[[bytes], None], bodies: list[bytes], threads: int
) -> tuple[float, float]:
    """(CPU ms per delivery of this process, deliveries/s) with ``bodies`` split over
    ``threads`` threads running at once."""
    share = len(bodies) // threads
    chunks = [bodies[i * share : (i + 1) * share] for i in range(threads)]
    failures: list[BaseException] = []

    def run(chunk: list[bytes]) -> None:
        try:
            for body in chunk:
                deliver(body)
        except Exception as error:  # noqa: BLE001 - reported below, from the main thread
            failures.append(error)

    workers = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    cpu, wall = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise SystemExit(f"{len(failures)} threads failed; first: {failures[0]}")
    done = share * threads
    return (time.process_time() - cpu) / done * 1000, done / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,4,32", help="thread counts, comma-separated")
    parser.add_argument("--deliveries", type=int, default=2400, help="per thread count and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]

    from services.bootstrap import build_application
    from services.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="tenzo-thread-tax-"))
    receiver = dispatch.start_receiver(workdir)
    application = build_application(
        Settings(
            database_url=f"sqlite:///{workdir}/unused.sqlite3",
            encryption_key=base64.b64encode(os.urandom(32)).decode(),
        )
    )
    url = f"https://localhost:{receiver.port}/hooks/0"
    sender = WebhookSender(DeliveryPolicy(allow_private_networks=True, ca_bundle=receiver.ca_file))
    deliver = delivery_work(url, sender, sealing_encoder(application))
    try:
        for _, body in [dispatch.message(ORG) for _ in range(200)]:  # warm-up: connections, caches
            deliver(body)
        results: dict[int, list[tuple[float, float]]] = {n: [] for n in counts}
        for round_number in range(args.rounds):
            for threads in counts if round_number % 2 == 0 else counts[::-1]:
                bodies = [dispatch.message(ORG)[1] for _ in range(args.deliveries)]
                results[threads].append(timed(deliver, bodies, threads))
                cpu_ms, rate = results[threads][-1]
                print(
                    f"round {round_number + 1}, {threads:3d} threads: {cpu_ms:.2f} ms "
                    f"of CPU per delivery, {rate:.0f} deliveries/s",
                    flush=True,
                )
        base = statistics.median(cpu for cpu, _ in results[counts[0]])
        print(f"\n| threads | CPU ms per delivery (median) | vs {counts[0]} | deliveries/s |")
        print("|---|---|---|---|")
        for threads, rows in results.items():
            cpu = statistics.median(c for c, _ in rows)
            rate = statistics.median(r for _, r in rows)
            print(f"| {threads} | {cpu:.2f} | {cpu / base:.2f} | {rate:.0f} |")
    finally:
        sender.close()
        application.close()
        receiver.process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
