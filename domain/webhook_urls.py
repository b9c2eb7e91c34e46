"""Rules for webhook target URLs (SPEC 5.2): pure, the resolver is passed in."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

from domain.errors import InvalidWebhookUrl

MAX_URL_LENGTH = 2048

Resolver = Callable[[str], Iterable[str]]
"""Maps a host name to the IP addresses it resolves to (raises OSError when it cannot)."""

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# IPv6 forms that carry an IPv4 address in their last 32 bits, judged as that address:
# IPv4-compatible (deprecated), IPv4-translated (SIIT), the NAT64 well-known prefix.
_EMBEDDING_IPV4 = tuple(
    ipaddress.ip_network(prefix) for prefix in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96")
)
# RFC 8215: a network's own NAT64 prefix. Where the IPv4 address sits depends on the
# prefix length that network chose, so it cannot be read back; the whole /48 is local
# (not globally reachable in the IANA registry), hence never public.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")

# Names that never denote a public host, whatever a resolver answers (or fails to):
# localhost (RFC 6761), mDNS .local (RFC 6762), home.arpa (RFC 8375), .internal (ICANN).
SPECIAL_USE_NAMES = ("localhost", "local", "home.arpa", "internal")


def is_special_use_name(host: str) -> bool:
    """True for ``localhost``, ``*.localhost``, ``*.local`` and the like (trailing dot ignored)."""
    name = host.rstrip(".").lower()
    return any(name == suffix or name.endswith("." + suffix) for suffix in SPECIAL_USE_NAMES)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the forms that carry
    one (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 64:ff9b::/96, 6to4, Teredo):
    a gateway or dual-stack socket would deliver to that IPv4 address."""
    embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
    if embedded is None and any(ip in prefix for prefix in _EMBEDDING_IPV4):
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return embedded


def is_public_address(address: str) -> bool:
    """True when the IP address is globally routable; an IPv6 address that carries an
    IPv4 address (see ``embedded_ipv4``) is public only if that IPv4 address is too.
    The one rule for configuration and delivery time (services/dispatcher/sender.py)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_NAT64:
            return False
        embedded = embedded_ipv4(ip)
        if embedded is not None and not is_public_address(str(embedded)):
            return False
        if ip.sixtofour is not None:
            # 6to4 is routed to the IPv4 address it carries. Judged by that alone: older
            # Pythons (Debian 12's 3.11.2) list all of 2002::/16 as private, newer ones not.
            return True
    if ip.version == 4 and ip in _CGNAT:
        return False
    return ip.is_global and not ip.is_multicast


def may_be_link_local(address: str) -> bool:
    """True for a link-local address (169.254.0.0/16, fe80::/10: where cloud metadata
    services answer), also when an IPv6 form carries it (see ``embedded_ipv4``), and
    for a network's own NAT64 prefix (64:ff9b:1::/48), which could carry one where
    it cannot be read back."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_NAT64:
            return True
        embedded = embedded_ipv4(ip)
        if embedded is not None and embedded.is_link_local:
            return True
    return ip.is_link_local


def is_allowed_target(address: str, *, allow_private_networks: bool) -> bool:
    """Whether a webhook may be delivered to this IP address: a public one always;
    with ``allow_private_networks`` (tests, local development) also loopback and
    private ones, but never a link-local one (``may_be_link_local``). The one rule
    for configuration and delivery time (services/dispatcher/sender.py)."""
    if allow_private_networks:
        return not may_be_link_local(address)
    return is_public_address(address)


def host_name_error(host: str) -> str | None:
    """Why ``host`` (a URL's host, without brackets) is not a name DNS can carry, or
    None when it is, or is an IP address.

    Every label is 1 to 63 characters (the standard library's IDNA codec checks it).
    An internationalised name, one with a label that is not ASCII or is an ``xn--``
    A-label, must be valid IDNA 2008 after UTS 46 mapping, as the ``idna`` package
    (which requests encodes such names with) decides: ``xn--`` alone, or Punycode that
    decodes to nothing valid, is refused. Plain ASCII labels keep what browsers accept.
    """
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        host.encode("idna")
    except UnicodeError:
        return f"{host!r} has an empty label or one over 63 characters"
    labels = host.lower().split(".")
    if host.isascii() and not any(label.startswith("xn--") for label in labels):
        return None
    try:
        idna.encode(host, uts46=True)
    except idna.IDNAError as error:
        return f"{host!r} is not valid IDNA ({error})"
    return None


def has_percent_in_host(url: str) -> bool:
    """True when the URL's host holds a '%' (percent-encoding or an IPv6 zone id). Clients
    decode it (urllib3 reads ``%31%32%37.0.0.1`` as ``127.0.0.1``), so the host checked
    would not be the host connected to: such a URL is refused at configuration and at
    delivery time alike."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host is not None and "%" in host


@dataclass(frozen=True)
class WebhookUrlPolicy:
    """Checks a webhook URL: absolute https, a host, no credentials, public target."""

    resolve: Resolver
    allow_private_networks: bool = False

    def check(self, url: str) -> str:
        """Return the URL unchanged when it is acceptable, else raise InvalidWebhookUrl."""
        if len(url) > MAX_URL_LENGTH:
            raise InvalidWebhookUrl(f"must be at most {MAX_URL_LENGTH} characters")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as error:
            raise InvalidWebhookUrl("is not a valid URL") from error
        if parts.scheme.lower() != "https":
            raise InvalidWebhookUrl("must use https://")
        if not parts.hostname:
            raise InvalidWebhookUrl("must name a host")
        if has_percent_in_host(url):
            raise InvalidWebhookUrl("must name a valid host, not percent-encoded")
        if parts.username is not None or parts.password is not None:
            raise InvalidWebhookUrl("must not contain credentials")
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
            raise InvalidWebhookUrl("must not contain white space or control characters")
        if parts.port == 0:
            raise InvalidWebhookUrl("must not use port 0")
        problem = host_name_error(parts.hostname)
        if problem is not None:
            raise InvalidWebhookUrl(f"must name a valid host: {problem}")
        self.refuse_special_use(parts.hostname)
        addresses = self.addresses_of(parts.hostname)
        # A name that does not resolve yet is accepted (as Stripe does); the
        # delivery fails until it resolves, and is checked again then.
        self.refuse_private(addresses or [])
        return url

    def addresses_of(self, host: str) -> list[str] | None:
        """The host's IP addresses (itself when it is one), or None when it does not resolve."""
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            pass
        try:
            # "example.com." is the fully qualified form of "example.com".
            return sorted(set(self.resolve(host.rstrip(".") or host))) or None
        except (OSError, UnicodeError):
            return None

    def refuse_special_use(self, host: str) -> None:
        """Raise InvalidWebhookUrl for a name reserved for local use (unless allowed)."""
        if not self.allow_private_networks and is_special_use_name(host):
            raise InvalidWebhookUrl("must not point to a private, loopback or link-local address")

    def refuse_private(self, addresses: Iterable[str]) -> None:
        """Raise InvalidWebhookUrl when any address is not an allowed target: not
        public, or link-local even where private networks are allowed."""
        for address in addresses:
            if is_allowed_target(address, allow_private_networks=self.allow_private_networks):
                continue
            if self.allow_private_networks:
                raise InvalidWebhookUrl(
                    "must not point to a link-local address (169.254.0.0/16, fe80::/10), "
                    "even where private networks are allowed"
                )
            raise InvalidWebhookUrl("must not point to a private, loopback or link-local address")
