"""Where provider calls may go: public hosts, and the private ones an admin names.

A provider account's base URL is typed by a provider admin, the account's credential is sent
there and the answer is shown to agents. Pointed at loopback, at a cloud metadata service
(169.254.169.254), at a host on the console's own network or at the console itself, it would
make the console a proxy into places its users cannot reach (server-side request forgery).

So a base URL is checked when it is saved (admin form, import_accounts): http(s) only, no
user:password@, every address its host resolves to public, and not the console's own host.
The check is repeated on every connection (providers/transport.py) against the address
actually connected to, because a DNS answer can change between the save and the call.

`PROVIDER_PRIVATE_HOSTS` lists the exceptions: `host` allows that host on any port,
`host:port` (`[v6]:port`) on that port only. Hosts are matched as written in the base URL.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.http.request import validate_host

from providers.errors import ProviderConfigurationError

ALLOW_LIST_SETTING = "PROVIDER_PRIVATE_HOSTS"
DEFAULT_PORTS = {"http": 80, "https": 443}
#: The NAT64 well-known prefix: its addresses stand for the IPv4 address in their last 32 bits.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
#: (predicate, words), in the order a message should prefer: 0.0.0.0 is also "private",
#: 169.254.x.x also "private", 240.x.x.x also "private".
ADDRESS_KINDS = (
    ("is_unspecified", "an unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_reserved", "a reserved address"),
    ("is_site_local", "a site-local address"),
    ("is_private", "a private address"),
)
ALLOW_HINT = (
    "provider accounts may only reach public hosts. To allow a host on your own network, "
    f"add it to {ALLOW_LIST_SETTING}."
)


class RefusedDestination(ProviderConfigurationError):
    """A base URL or a connection that would reach a host provider calls must not reach.

    A configuration error: never retried, and raised before any byte is sent."""


@dataclass(frozen=True)
class AllowedHost:
    host: str
    port: int | None  # None: any port


def normalize_host(host: str) -> str:
    """A host as compared here: no brackets or trailing dot, lower case, IDNA, IPs canonical."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def parse_allowed(entry: str) -> AllowedHost | None:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; None when malformed."""
    entry = entry.strip()
    if not entry:
        return None
    host, port = entry, ""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        return None
    return AllowedHost(normalize_host(host), int(port) if port else None)


def allowed_hosts() -> list[AllowedHost]:
    # Read on every check (not cached) so a test's override_settings applies at once.
    parsed = (parse_allowed(str(entry)) for entry in getattr(settings, ALLOW_LIST_SETTING, []))
    return [entry for entry in parsed if entry is not None]


def is_allow_listed(host: str, port: int) -> bool:
    host = normalize_host(host)
    return any(entry.host == host and entry.port in (None, port) for entry in allowed_hosts())


def address_kind(address: str) -> str | None:
    """What kind of non-public address `address` is ("a loopback address"), or None if public."""
    ip = ipaddress.ip_address(address)
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 address that stands for an IPv4 one is judged by that IPv4 address too:
        # ::ffff:127.0.0.1 reaches 127.0.0.1 (and Python 3.12 does not call it loopback).
        embedded = [ip.ipv4_mapped, ip.sixtofour]
        if ip in NAT64_PREFIX:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        candidates = [e for e in embedded if e is not None] + candidates
    for candidate in candidates:
        for predicate, words in ADDRESS_KINDS:
            if getattr(candidate, predicate, False):
                return words
        if not candidate.is_global:
            return "a non-public address"
    return None


def refusal(host: str, address: str, kind: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    where = kind if normalize_host(host) == normalize_host(address) else f"{kind} ({address})"
    return f"{shown} resolves to {where}; {ALLOW_HINT}"


def check_addresses(host: str, port: int, addresses: Iterable[str]) -> None:
    """Raise RefusedDestination unless every address is public or the host is allow-listed."""
    if is_allow_listed(host, port):
        return
    for address in addresses:
        kind = address_kind(address)
        if kind:
            raise RefusedDestination(refusal(host, address, kind))


def resolve_checked(host: str, port: int, family: int = socket.AF_UNSPEC) -> list[tuple]:
    """getaddrinfo, refused when any answer is not public (a host is judged by all its
    addresses: which one a client picks is not ours to know). socket.gaierror passes through."""
    infos = socket.getaddrinfo(normalize_host(host), port, family, socket.SOCK_STREAM)
    check_addresses(host, port, (info[4][0] for info in infos))
    return infos


def is_console_host(host: str) -> bool:
    """The host is one this console answers to (DJANGO_ALLOWED_HOSTS; "*" names no host)."""
    patterns = [p for p in settings.ALLOWED_HOSTS if p != "*"]
    shown = f"[{normalize_host(host)}]" if ":" in host else normalize_host(host)
    return validate_host(shown, patterns)


def url_problem(url: str, *, resolve: bool) -> str | None:
    """Why provider calls may not go to `url`, or None.

    With `resolve`, the host's DNS answer is checked too (saving an account); without, only
    what the URL itself says (every call: the transport checks the addresses it connects to).
    A name that does not resolve now passes: the connection checks whatever it resolves to
    then, and a typo is found by Test connection.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"'{url}' is not a valid URL."
    if parts.scheme not in DEFAULT_PORTS:
        return "Provider URLs must start with http:// or https://."
    if parts.username is not None or parts.password is not None:
        return (
            "Provider URLs may not carry a user name or password (user:password@host); "
            "enter credentials in the account's credential fields."
        )
    host = parts.hostname
    if not host:
        return f"'{url}' has no host."
    port = port or DEFAULT_PORTS[parts.scheme]
    if is_allow_listed(host, port):
        return None
    try:
        if is_ip_literal(host):
            check_addresses(host, port, [host])
        elif resolve:
            resolve_checked(host, port)
    except RefusedDestination as refused:
        return str(refused)
    except (socket.gaierror, UnicodeError):
        pass
    if is_console_host(host):
        return (
            f"{host} is this console's own address (DJANGO_ALLOWED_HOSTS); provider accounts "
            f"may only reach provider services. To allow it anyway, add it to {ALLOW_LIST_SETTING}."
        )
    return None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def base_url_problem(url: str) -> str | None:
    """Saving an account: the URL and every address its host resolves to."""
    return url_problem(url, resolve=True)


def check_request_url(url: str) -> None:
    """Every call: what the URL says (the transport checks the address)."""
    problem = url_problem(url, resolve=False)
    if problem:
        raise RefusedDestination(problem)


def allow_in_this_run(entry: str) -> list[str]:
    """Allow-list `entry` in this process and in the processes it starts from now on (the
    local sandbox of ./scripts/run, the tests and the benchmarks). Returns the list before."""
    before = list(getattr(settings, ALLOW_LIST_SETTING, []))
    now = [*before, entry] if entry not in before else before
    setattr(settings, ALLOW_LIST_SETTING, now)
    os.environ[ALLOW_LIST_SETTING] = ",".join(now)
    return before


@checks.register(checks.Tags.security)
def check_allow_list(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A malformed entry would silently allow nothing: say so at startup."""
    return [
        checks.Error(
            f"{ALLOW_LIST_SETTING} entry '{entry}' is not host, host:port or [IPv6]:port.",
            id="providers.E001",
        )
        for entry in getattr(settings, ALLOW_LIST_SETTING, [])
        if str(entry).strip() and parse_allowed(str(entry)) is None
    ]
