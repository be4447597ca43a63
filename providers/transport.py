"""The requests transport of provider sessions: it checks the address it connects to.

Why here, and this way: a check of the base URL when it is saved (providers/egress.py) is not
enough, because DNS can answer a public address then and 127.0.0.1 a second later (DNS
rebinding), and a check before calling requests would resolve the name once more than the
connection does. So the connection itself resolves the host once, refuses if any answer is
not public (unless allow-listed), and connects to exactly the addresses it checked. Only the
socket is ours: urllib3 still sends the URL's host in the Host header, SNI and certificate
check. This is what Sentry's `safe_create_connection` and the `advocate` library do: a
connection class whose `_new_conn` validates, rather than patching `socket` or urllib3
globally (which would change every other HTTP client in the process).

The transport also never goes through an HTTP(S)_PROXY from the environment: through a proxy
the address connected to is the proxy's, and the target's would go unchecked.
"""

from __future__ import annotations

import socket
import sys

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from providers.egress import resolve_checked


class CheckedConnectionMixin:
    """`_new_conn` of urllib3's HTTPConnection, with the resolution checked and used once."""

    def _new_conn(self) -> socket.socket:
        try:
            # RefusedDestination (not an OSError) passes through urllib3 and requests as is.
            infos = resolve_checked(self._dns_host, self.port, allowed_gai_family())
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        try:
            sock = self._connect_first(infos)
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock

    def _connect_first(self, infos: list[tuple]) -> socket.socket:
        """Connect to the first of the checked addresses that answers (as urllib3 does)."""
        error: OSError | None = None
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if self.timeout is None or isinstance(self.timeout, int | float):
                    sock.settimeout(self.timeout)  # otherwise urllib3's "default" sentinel
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(address)
                return sock
            except OSError as exc:
                error = exc
                sock.close()
        raise error or OSError("getaddrinfo returned no address")


class CheckedHTTPConnection(CheckedConnectionMixin, HTTPConnection):
    pass


class CheckedHTTPSConnection(CheckedConnectionMixin, HTTPSConnection):
    pass


class CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


class CheckedAdapter(HTTPAdapter):
    """Mounted for http:// and https:// on every provider session (providers/http.py)."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": CheckedHTTPConnectionPool,
            "https": CheckedHTTPSConnectionPool,
        }

    def send(self, request, **kwargs):
        kwargs["proxies"] = {}  # connect directly, so the address checked is the provider's
        return super().send(request, **kwargs)
