"""One webhook delivery attempt over HTTPS (SPEC 7), with the send-time SSRF guard (SPEC 5.2).

The sender owns no retry loop: the dispatcher schedules attempts from
``RetrySchedule`` (domain/deliveries.py) and records each ``AttemptResult`` as an event.

Why the HTTP plumbing below is not a plain ``requests.post``:

- The host is resolved once, every address is checked, and the connection goes to the
  checked address. A second DNS lookup by the HTTP client could answer differently
  (DNS rebinding) and reach an internal service. TLS still uses the host name for SNI
  and certificate verification, and the request carries the original ``Host``.
- The timeout is a total per attempt. Socket timeouts alone restart on every byte, so
  a server trickling one byte a second would hold the attempt forever; every read is
  given only the time left until the attempt's deadline.
"""

from __future__ import annotations

import contextvars
import functools
import io
import ipaddress
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPException, RemoteDisconnected
from typing import Any, Literal, NamedTuple

import certifi
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError
from urllib3.util import parse_url
from urllib3.util.ssl_match_hostname import CertificateError

from domain.webhook_urls import (
    has_percent_in_host,
    host_name_error,
    is_allowed_target,
    is_special_use_name,
)
from services.dispatcher.attempt_detail import (
    kept_response_headers,
    refused_cause,
    status_cause,
    transport_cause,
)

Resolver = Callable[[str], Iterable[str]]
Reply = Literal["answered", "no_answer", "not_sent"]

_READ_CHUNK = 16384
_MAX_CACHED_TARGETS = 256
_CONNECTIONS_PER_TARGET = 256  # as many as the default worker threads: none reconnect
DNS_CACHE_SECONDS = 5.0
# How far past its deadline a response's read may wait (see _DeadlineReader.readinto).
DEADLINE_SLACK = 0.05

# Errors that mean "the network or the peer failed", never "this code is wrong".
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    Urllib3Error,
    HTTPException,
    OSError,  # includes ssl.SSLError, socket.timeout and ConnectionError
    CertificateError,
)


@dataclass(frozen=True)
class DeliveryPolicy:
    """How webhook attempts are made (SPEC 3 environment, SPEC 7)."""

    timeout: float = 30.0
    """Total seconds per attempt: DNS, connect, TLS, send and the whole response."""
    allow_private_networks: bool = False
    """Loopback and private targets too (tests, local development); never link-local."""
    ca_bundle: str | None = None
    """An extra CA file trusted in addition to the default trust store."""
    max_response_bytes: int = 65536
    kept_response_bytes: int = 1024
    success_statuses: frozenset[int] = frozenset({200, 201, 202, 204})
    # Answers asking the sender for less: the organization's concurrency is halved.
    backpressure_statuses: frozenset[int] = frozenset({429, 503})


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt did; ``error`` is a human reason whenever it did not succeed."""

    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_excerpt: str
    succeeded: bool
    reply: Reply
    """Whether the endpoint answered: ``answered`` (a whole response, any status, however
    late), ``no_answer`` (timeout, connection or TLS failure, a response cut off) or
    ``not_sent`` (refused before sending: SSRF guard, invalid URL, no DNS answer)."""
    backpressure: bool = False
    """An answer asking for less (429, 503): the organization's concurrency is halved."""
    cause: str | None = None
    """One plain sentence a person can act on, whenever it did not succeed (SPEC 10)."""
    request_headers: dict[str, str] | None = None
    """The headers as sent (signatures included; ``Host`` and ``Content-Length`` too)."""
    response_headers: dict[str, str] | None = None
    """The receiver's headers, secrets masked, at most 4 KiB (attempt_detail.py)."""


def system_resolver(host: str) -> list[str]:
    """Resolve ``host`` with the operating system, returning its addresses in preference order."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class CachingResolver:
    """Remembers each host's addresses for ``seconds``, as a stub resolver's cache does:
    one lookup per host and few seconds rather than one per attempt. Every attempt still
    checks the addresses and connects to a checked one; failures are not remembered."""

    def __init__(self, resolve: Resolver, seconds: float = DNS_CACHE_SECONDS) -> None:
        self._resolve = resolve
        self._seconds = seconds
        self._answers: dict[str, tuple[float, list[str]]] = {}

    def __call__(self, host: str) -> list[str]:
        now = time.monotonic()
        answer = self._answers.get(host)
        if answer is not None and answer[0] > now:
            return answer[1]
        addresses = list(self._resolve(host))
        if len(self._answers) >= _MAX_CACHED_TARGETS:
            self._answers.clear()
        self._answers[host] = (now + self._seconds, addresses)
        return addresses


class _Refused(Exception):
    """The attempt was refused before anything was sent; the message is the reason."""


class _Target(NamedTuple):
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int
    address: str  # the checked IP address the connection goes to
    host_header: str


class WebhookSender:
    """Makes single HTTPS webhook attempts; safe to share between worker threads."""

    def __init__(self, policy: DeliveryPolicy, resolve: Resolver | None = None) -> None:
        self._policy = policy
        self._resolve = resolve or CachingResolver(system_resolver)
        self._tls = _trust_store(policy.ca_bundle)
        self._adapters: OrderedDict[_Target, _PinnedAdapter] = OrderedDict()
        self._lock = threading.Lock()

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        """POST ``body`` with ``headers`` to ``url`` once and report the outcome.

        Never raises for network or peer failures (refused target, DNS, connect, TLS,
        timeout, bad status): those come back as a failed result with a reason. The
        attempt ends at ``policy.timeout`` seconds however slowly the peer answers; at
        most ``max_response_bytes`` of the response are read and ``kept_response_bytes``
        kept. Redirects are reported, never followed.
        """
        started_at = datetime.now(UTC)
        start = time.monotonic()
        deadline = start + self._policy.timeout
        status: int | None = None
        excerpt = b""
        error: str | None
        cause: str | None = None
        reply: Reply = "not_sent"
        request: requests.PreparedRequest | None = None
        target: _Target | None = None
        answer = _Answer()
        try:
            request = _post_request(url, body, headers)
            target = self._target(request.url or "")
            status, excerpt, error, reply = self._exchange(target, request, deadline, answer)
            cause = answer.cause or (
                None if status is None else status_cause(status, error is None)
            )
        except _Refused as refused:
            error = str(refused)
            cause = refused_cause(error)
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as bad:
            error = f"invalid URL: {bad}"
            cause = f"Not sent: the URL is not valid ({bad})."
        except _TRANSPORT_ERRORS as failure:
            error, reply = self._describe(failure, deadline), "no_answer"
            cause = self._cause(failure, deadline, target)
        return AttemptResult(
            started_at=started_at,
            duration_ms=int((time.monotonic() - start) * 1000),
            status_code=status,
            error=error,
            response_excerpt=excerpt[: self._policy.kept_response_bytes].decode(
                "utf-8", errors="replace"
            ),
            succeeded=error is None,
            reply=reply,
            backpressure=reply == "answered" and status in self._policy.backpressure_statuses,
            cause=cause,
            request_headers=dict(request.headers if request is not None else headers),
            response_headers=answer.headers,
        )

    def close(self) -> None:
        """Close every pooled connection; the sender can still be used afterwards."""
        with self._lock:
            adapters = list(self._adapters.values())
            self._adapters.clear()
        for adapter in adapters:
            adapter.close()

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _target(self, url: str) -> _Target:
        """Resolve the URL's host once and pick the checked address to connect to."""
        host, port, netloc = _https_host(url)
        allow_private = self._policy.allow_private_networks
        if not allow_private and is_special_use_name(host):  # as at configuration time
            raise _Refused(f"host {host!r} is a special-use name, never a public host")
        addresses = self._addresses(host)
        for address in addresses:
            if not is_allowed_target(address, allow_private_networks=allow_private):
                kind = "link-local" if allow_private else "not public"
                raise _Refused(f"target address {address} is {kind}")
        return _Target(host, port, addresses[0], netloc)

    def _addresses(self, host: str) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        try:
            addresses = list(dict.fromkeys(str(a) for a in self._resolve(host)))
        except (OSError, UnicodeError) as error:
            raise _Refused(f"host {host!r} does not resolve") from error
        if not addresses:
            raise _Refused(f"host {host!r} does not resolve")
        return addresses

    def _exchange(
        self, target: _Target, request: requests.PreparedRequest, deadline: float, answer: _Answer
    ) -> tuple[int | None, bytes, str | None, Reply]:
        """Send the request and read the capped response; (status, body read, error,
        whether the endpoint answered). ``answer`` gets the response's headers, and
        the cause when the response was cut off."""
        adapter = self._adapter(target)
        token = _ATTEMPT_DEADLINE.set(deadline)
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline passed before connecting")
            # The adapter is called directly rather than through a Session: nothing
            # follows redirects, no cookies travel between receivers, and no proxy or
            # .netrc from the environment applies.
            response = adapter.send(
                request, stream=True, timeout=(remaining, remaining), verify=True, proxies={}
            )
            status = response.status_code
            answer.headers = kept_response_headers(response.raw.headers.items())
            body, failure = _read_capped(response.raw, self._policy.max_response_bytes, deadline)
        finally:
            _ATTEMPT_DEADLINE.reset(token)
        if failure is not None:
            answer.cause = self._cause(failure, deadline, target)
            return status, body, self._describe(failure, deadline), "no_answer"
        if status in self._policy.success_statuses:
            return status, body, None, "answered"
        if 300 <= status < 400:
            return status, body, f"redirect {status} not followed", "answered"
        return status, body, f"unexpected status {status}", "answered"

    def _adapter(self, target: _Target) -> _PinnedAdapter:
        """The pooled adapter for this (host, port, address); least recently used ones close."""
        with self._lock:
            adapter = self._adapters.get(target)
            if adapter is not None:
                self._adapters.move_to_end(target)
                return adapter
            adapter = _PinnedAdapter(target, self._tls)
            self._adapters[target] = adapter
            evicted = None
            if len(self._adapters) > _MAX_CACHED_TARGETS:
                _, evicted = self._adapters.popitem(last=False)
        if evicted is not None:
            # Connections in use by another thread are closed when they are returned.
            evicted.close()
        return adapter

    def _describe(self, failure: BaseException, deadline: float) -> str:
        """A short human reason for a transport failure."""
        chain = _causes(failure)
        for error in chain:
            if isinstance(error, ssl.SSLCertVerificationError):
                detail = error.verify_message or str(error)
                return f"TLS error: certificate verify failed: {detail}"
            if isinstance(error, CertificateError):
                return f"TLS error: {error}"
        if time.monotonic() >= deadline or any(
            isinstance(e, TimeoutError | ReadTimeoutError | requests.Timeout) for e in chain
        ):
            return f"timeout after {self._policy.timeout}s"
        for error in chain:
            if isinstance(error, ssl.SSLError):
                return f"TLS error: {error.reason or error}"
            if isinstance(error, ConnectionRefusedError):
                return "connection refused"
            if isinstance(error, ConnectionResetError):
                return "connection reset by peer"
            if isinstance(error, RemoteDisconnected):
                return "connection closed without a response"
        root = chain[-1]
        return f"connection failed: {type(root).__name__}: {root}"

    def _cause(self, failure: BaseException, deadline: float, target: _Target | None) -> str:
        """The plain sentence for a transport failure (attempt_detail.py)."""
        chain = _causes(failure)
        timed_out = time.monotonic() >= deadline or any(
            isinstance(e, TimeoutError | ReadTimeoutError | requests.Timeout) for e in chain
        )
        return transport_cause(
            chain,
            timed_out,
            self._policy.timeout,
            target.host if target else None,
            target.address if target else None,
            target.port if target else None,
        )


class _Answer:
    """What an exchange learnt besides its outcome (filled in as it goes)."""

    headers: dict[str, str] | None = None
    cause: str | None = None


def _post_request(url: str, body: bytes, headers: dict[str, str]) -> requests.PreparedRequest:
    """The POST as requests prepares it, minus the cookie and .netrc handling that a
    webhook does not use, with the URL checked and normalised once per URL."""
    request = requests.PreparedRequest()
    request.method = "POST"
    request.url = _prepared_url(url)
    request.prepare_headers(headers)  # refuses header values with line breaks
    request.prepare_body(body, None)
    return request


@functools.lru_cache(maxsize=4096)
def _https_host(url: str) -> tuple[str, int, str]:
    """(host, port, netloc) of an https:// URL, parsed once per URL."""
    parts = parse_url(url)
    if (parts.scheme or "").lower() != "https":
        raise _Refused("URL must use https://")
    if not parts.host:
        raise _Refused("URL has no host")
    host = parts.host.strip("[]")
    problem = host_name_error(host)
    if problem is not None:  # the rule of configuration time, before any DNS query
        raise _Refused(f"URL must name a valid host: {problem}")
    return host, parts.port or 443, parts.netloc or host


@functools.lru_cache(maxsize=4096)
def _prepared_url(url: str) -> str:
    if has_percent_in_host(url):  # preparing the URL would decode it to another host
        raise _Refused("URL host must not be percent-encoded")
    request = requests.PreparedRequest()
    request.prepare_url(url, None)
    return str(request.url)


def _read_capped(raw: Any, limit: int, deadline: float) -> tuple[bytes, BaseException | None]:
    """Read at most ``limit`` body bytes before ``deadline``; return them and any failure.

    A completely read response hands its connection back to the pool for keep-alive;
    anything else (cut at the cap, failed, timed out) closes it, because unread bytes
    would corrupt the next exchange on that connection.
    """
    body = bytearray()
    complete = False
    failure: BaseException | None = None
    try:
        while len(body) < limit:
            if time.monotonic() >= deadline:
                raise TimeoutError("deadline passed while reading the response")
            # read1 returns what has arrived instead of waiting for a full chunk.
            chunk = raw.read1(min(_READ_CHUNK, limit - len(body)))
            if not chunk:
                complete = True
                break
            body += chunk
    except _TRANSPORT_ERRORS as error:
        failure = error
    if not complete:
        raw.close()
    raw.release_conn()
    return bytes(body), failure


def _causes(error: BaseException) -> list[BaseException]:
    """The error and everything it wraps (requests and urllib3 nest the real cause)."""
    chain: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop(0)
        if any(current is seen for seen in chain):
            continue
        chain.append(current)
        wrapped = [getattr(current, "reason", None), current.__cause__, current.__context__]
        wrapped.extend(current.args)
        pending.extend(e for e in wrapped if isinstance(e, BaseException))
    return chain


def _trust_store(ca_bundle: str | None) -> ssl.SSLContext:
    """The default trust store (certifi, as requests uses) plus the optional extra CA file."""
    context = ssl.create_default_context(cafile=certifi.where())
    # Names are checked against subjectAltName only, as browsers do, never the CN.
    context.hostname_checks_common_name = False
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


# The monotonic deadline of the attempt running in this thread, read by the connections.
_ATTEMPT_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "webhook_attempt_deadline", default=None
)


class _DeadlineReader(io.RawIOBase):
    """Reads a socket giving each read only the time left until the attempt's deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open while read
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed while reading the response")
        # Setting a socket's timeout is a system call that lets go of the interpreter
        # lock: done only when the one set (for the request, by urllib3) would let this
        # read run more than DEADLINE_SLACK past the deadline, or end it early.
        current = self._sock.gettimeout()
        if current is None or not remaining <= current <= remaining + DEADLINE_SLACK:
            self._sock.settimeout(remaining)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineSocket:
    """Stands in for a connection's socket while http.client parses a response."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def settimeout(self, timeout: float | None) -> None:
        """Each read sets what is left until the deadline (``_DeadlineReader``)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DeadlineHTTPSConnection(HTTPSConnection):
    """An HTTPS connection whose responses (status line, headers, body) obey the deadline."""

    _held: list[bytes] | None = None

    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """urllib3's request (which sets a reused socket's timeout first), with its
        writes (the headers, then the body) sent as one: one TLS record and one system
        call rather than two."""
        self._held = []
        try:
            super().request(*args, **kwargs)
        finally:
            held, self._held = self._held, None
        if held:
            super().send(b"".join(held))

    def send(self, data: Any) -> None:
        if self._held is not None:
            if isinstance(data, bytes):
                self._held.append(data)
                return
            held, self._held = self._held, None  # anything else: in order, as it comes
            super().send(b"".join(held))
        super().send(data)

    def getresponse(self) -> Any:  # type: ignore[override]
        deadline = _ATTEMPT_DEADLINE.get()
        real = self.sock
        if deadline is None or real is None:
            return super().getresponse()
        self.sock = _DeadlineSocket(real, deadline)  # type: ignore[assignment]
        try:
            return super().getresponse()
        finally:
            if self.sock is not None:  # http.client drops it when the server closes
                self.sock = real


class _PinnedPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class _PinnedAdapter(HTTPAdapter):
    """A requests adapter that connects only to one checked address.

    TLS SNI and certificate verification use the target's host name
    (``server_hostname`` / ``assert_hostname``), and the request keeps its ``Host``.
    """

    def __init__(self, target: _Target, tls: ssl.SSLContext) -> None:
        self._target = target
        super().__init__(pool_connections=1, pool_maxsize=_CONNECTIONS_PER_TARGET, max_retries=0)
        self._pool = _PinnedPool(
            target.address,
            target.port,
            maxsize=_CONNECTIONS_PER_TARGET,
            block=False,
            cert_reqs="CERT_REQUIRED",
            assert_hostname=target.host,
            server_hostname=target.host,
            ssl_context=tls,
        )

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: Any,
        proxies: Any = None,
        cert: Any = None,
    ) -> _PinnedPool:
        return self._pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # The pool's SSLContext already holds the trust store; requests would otherwise
        # make every new connection reload the certifi bundle.
        return None

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        request.headers["Host"] = self._target.host_header

    def close(self) -> None:
        self._pool.close()
        super().close()
