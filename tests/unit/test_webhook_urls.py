"""Webhook URL rules (SPEC 5.2): https, a host, no credentials, public targets only."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput, InvalidWebhookUrl
from domain.webhook_urls import (
    MAX_URL_LENGTH,
    WebhookUrlPolicy,
    embedded_ipv4,
    has_percent_in_host,
    is_public_address,
)

DNS = {
    "localhost": ["127.0.0.1", "::1"],
    "hooks.example.com": ["93.184.215.14"],
    "loopback.example.com": ["127.0.0.1"],
    "rebind.example.com": ["93.184.215.14", "10.1.2.3"],
    "v6only.example.com": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "metadata.example.com": ["169.254.169.254"],
    "metadata-v6.example.com": ["fe80::a9fe:a9fe"],
    "mixed.example.com": ["10.0.0.1", "169.254.169.254"],
}


def fake_dns(host: str) -> list[str]:
    try:
        return DNS[host]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


policy = WebhookUrlPolicy(resolve=fake_dns)
permissive = WebhookUrlPolicy(resolve=fake_dns, allow_private_networks=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/tenzo",
        "https://hooks.example.com:8443/a/b?c=d#e",
        "HTTPS://hooks.example.com/",
        "https://v6only.example.com/",
        "https://93.184.215.14/hook",
        "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hook",
    ],
)
def test_public_https_urls_are_accepted_unchanged(url):
    assert policy.check(url) == url


@pytest.mark.parametrize(
    "host",
    [
        "xn--",
        "xn--.example.com",
        "hooks.xn--zz.example.com",
        "xn--a.com",
        "XN--ZZ.example.com",
        "\u2603.example.com",  # a snowman: not a letter, refused by IDNA 2008
        "b\u00fccher.example\u2603.com",
    ],
)
def test_a_host_that_is_not_valid_idna_is_refused(host):
    for checking in (policy, permissive):
        with pytest.raises(InvalidWebhookUrl, match="must name a valid host: .* is not valid IDNA"):
            checking.check(f"https://{host}/hook")


@pytest.mark.parametrize(
    "host",
    ["xn--bcher-kva.example", "b\u00fccher.example", "B\u00dcCHER.example", "hooks.example.com."],
)
def test_valid_internationalised_names_are_accepted(host):
    url = f"https://{host}/hook"
    assert policy.check(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/", "https"),
        ("ftp://hooks.example.com/", "https"),
        ("hooks.example.com/webhook", "https"),
        ("/relative/path", "https"),
        ("https:///no-host", "host"),
        ("https://user:password@hooks.example.com/", "credentials"),
        ("https://user@hooks.example.com/", "credentials"),
        ("https://hooks.example.com:99999/", "valid"),
        ("https://hooks.example.com/a b", "white space"),
        ("https://hooks.example.com/a\tb", "white space"),
        ("https://hooks.exa\x00mple.com/", "control characters"),
        ("https://hooks.example.com/\x7f", "control characters"),
        ("https://hooks.example.com:0/", "port 0"),
        ("https://hooks..example.com/", "valid host"),
        ("https://" + "a" * 64 + ".example.com/", "valid host"),
        ("https://%31%32%37.0.0.1/", "percent-encoded"),
        ("https://hooks%2Eexample.com/", "percent-encoded"),
        ("https://[fe80::1%25eth0]/", "percent-encoded"),
    ],
)
def test_malformed_urls_are_refused_with_a_reason(url, reason):
    with pytest.raises(InvalidWebhookUrl, match=reason) as raised:
        policy.check(url)
    assert isinstance(raised.value, InvalidInput)
    assert raised.value.field == "url"


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/",
        "https://127.0.0.1/",
        "https://127.1.2.3:8443/",
        "https://10.0.0.1/",
        "https://172.16.5.4/",
        "https://192.168.1.1/",
        "https://[::1]/",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/",
        "https://[fc00::1]/",
        "https://[fd12:3456::1]/",
        "https://[fe80::1]/",
        "https://[ff02::1]/",
        "https://224.0.0.1/",
        "https://0.0.0.0/",
        "https://[::]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:10.0.0.1]/",
        "https://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
        "https://[::127.0.0.1]/",  # IPv4-compatible
        "https://[::ffff:0:127.0.0.1]/",  # IPv4-translated (SIIT)
        "https://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "https://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "https://[64:ff9b:1::8.8.8.8]/",  # a network's own NAT64 prefix
        "https://[64:ff9b:1::7f00:1]/",
        "https://[2002:a00:1::]/",  # 6to4 wrapping 10.0.0.1
        "https://[2002:a9fe:a9fe::1]/",  # 6to4 wrapping 169.254.169.254
        "https://loopback.example.com/",
        "https://loopback.example.com./",
        "https://metadata.example.com/",
        "https://rebind.example.com/",  # one of its addresses is private
        # Special-use names are refused even when the resolver does not know them.
        "https://localhost./",
        "https://api.localhost/",
        "https://printer.local/",
        "https://router.home.arpa/",
        "https://db.internal/",
    ],
)
def test_non_public_targets_are_refused(url):
    with pytest.raises(InvalidWebhookUrl, match="private, loopback or link-local"):
        policy.check(url)


def test_a_name_is_checked_with_the_injected_resolver():
    asked: list[str] = []

    def resolver(host: str) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    with pytest.raises(InvalidWebhookUrl):
        WebhookUrlPolicy(resolve=resolver).check("https://innocent-looking.example.org/hook")
    assert asked == ["innocent-looking.example.org"]


def test_urls_longer_than_2048_characters_are_refused():
    base = "https://hooks.example.com/"
    longest = base + "a" * (MAX_URL_LENGTH - len(base))
    assert policy.check(longest) == longest
    with pytest.raises(InvalidWebhookUrl, match="2048"):
        policy.check(longest + "a")


def test_an_unresolvable_name_is_accepted_at_configuration_time():
    # ...but a delivery to it fails until it resolves (tests/integration/test_sender.py).
    assert policy.check("https://not-yet-in-dns.example.net/hook")


def test_allow_private_networks_lets_loopback_and_private_targets_through():
    permissive = WebhookUrlPolicy(resolve=fake_dns, allow_private_networks=True)
    for url in (
        "https://127.0.0.1:8443/",
        "https://[::1]/",
        "https://10.0.0.1/",
        "https://loopback.example.com/",
    ):
        assert permissive.check(url) == url
    # The other rules still hold.
    with pytest.raises(InvalidWebhookUrl):
        permissive.check("http://127.0.0.1/")
    with pytest.raises(InvalidWebhookUrl):
        permissive.check("https://u:p@127.0.0.1/")


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://169.254.0.1/",
        "https://169.254.255.255:8443/",
        "https://[fe80::1]/",
        "https://[febf:ffff::1]/",
        "https://[::ffff:169.254.169.254]/",  # IPv4-mapped
        "https://[::169.254.169.254]/",  # IPv4-compatible
        "https://[::ffff:0:169.254.169.254]/",  # IPv4-translated (SIIT)
        "https://[64:ff9b::a9fe:a9fe]/",  # NAT64
        "https://[2002:a9fe:a9fe::1]/",  # 6to4
        "https://[64:ff9b:1::a9fe:a9fe]/",  # a network's own NAT64: could wrap anything
        "https://metadata.example.com/",
        "https://metadata-v6.example.com/",
        "https://mixed.example.com/",  # one of its addresses is link-local
    ],
)
def test_link_local_targets_are_refused_even_when_private_networks_are_allowed(url):
    with pytest.raises(InvalidWebhookUrl, match="link-local"):
        permissive.check(url)
    with pytest.raises(InvalidWebhookUrl, match="link-local"):
        policy.check(url)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.127.255.254", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),  # global-scope multicast is still multicast
        ("0.0.0.0", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("64:ff9b::7f00:1", False),
        ("::ffff:0:7f00:1", False),
        ("::7f00:1", False),
        ("::ffff:0:808:808", True),  # IPv4-translated 8.8.8.8
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("2002:7f00:1::", False),
        ("64:ff9b:1::808:808", False),  # a network's own NAT64: local, whatever it wraps
        ("fe80::1%eth0", False),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public


# IPv6 forms that stand for an IPv4 address, built from it.
IPV4_CARRIERS = {
    "ipv4-mapped": lambda v4: ipaddress.IPv6Address(0xFFFF << 32 | int(v4)),
    "ipv4-compatible": lambda v4: ipaddress.IPv6Address(int(v4)),
    "ipv4-translated": lambda v4: ipaddress.IPv6Address(0xFFFF << 48 | int(v4)),
    "nat64": lambda v4: ipaddress.IPv6Address("64:ff9b::") + int(v4),
    "6to4": lambda v4: ipaddress.IPv6Address(0x2002 << 112 | int(v4) << 80),
}


@pytest.mark.parametrize("form", list(IPV4_CARRIERS))
@given(v4=st.ip_addresses(v=4))
def test_an_ipv6_form_carrying_an_ipv4_address_is_judged_as_that_address(form, v4):
    carrier = IPV4_CARRIERS[form](v4)
    assert embedded_ipv4(carrier) == v4
    assert is_public_address(str(carrier)) is is_public_address(str(v4))


@pytest.mark.parametrize("form", list(IPV4_CARRIERS))
@given(v4=st.ip_addresses(v=4, network="127.0.0.0/8") | st.ip_addresses(v=4, network="10.0.0.0/8"))
def test_a_carried_private_address_is_refused_in_a_url(form, v4):
    with pytest.raises(InvalidWebhookUrl, match="private, loopback or link-local"):
        policy.check(f"https://[{IPV4_CARRIERS[form](v4)}]/hook")


@given(host=st.text(alphabet="0123456789abcdef.%", min_size=1).filter(lambda h: "%" in h))
def test_a_percent_anywhere_in_the_host_is_refused(host):
    url = f"https://{host}/hook"
    assert has_percent_in_host(url)
    with pytest.raises(InvalidWebhookUrl, match="percent-encoded"):
        policy.check(url)
    # ...also when private networks are allowed: it is not a valid host at all.
    with pytest.raises(InvalidWebhookUrl, match="percent-encoded"):
        WebhookUrlPolicy(resolve=fake_dns, allow_private_networks=True).check(url)


def test_a_percent_outside_the_host_is_fine():
    url = "https://hooks.example.com/a%20b?q=%2F"
    assert not has_percent_in_host(url)
    assert policy.check(url) == url


@pytest.mark.parametrize("form", ["plain", *IPV4_CARRIERS])
@given(v4=st.ip_addresses(v=4, network="169.254.0.0/16"))
def test_any_carried_link_local_address_is_refused_when_private_networks_are_allowed(form, v4):
    address = v4 if form == "plain" else IPV4_CARRIERS[form](v4)
    host = f"[{address}]" if address.version == 6 else str(address)
    with pytest.raises(InvalidWebhookUrl, match="link-local"):
        permissive.check(f"https://{host}/hook")


@given(ip=st.ip_addresses(v=6, network="fe80::/10"))
def test_any_ipv6_link_local_address_is_refused_when_private_networks_are_allowed(ip):
    with pytest.raises(InvalidWebhookUrl, match="link-local"):
        permissive.check(f"https://[{ip}]/hook")
