"""Bearer tokens that a provider issues (OAuth password grant, key exchange).

Shared by Motadata, Keliweb and Particle Space: the token is cached in the database
(`AccessToken`, encrypted) so all workers use one token per account; it is refreshed before
it expires and renewed once after a 401. Vendors describe only their token request and answer.

Single flight across processes and machines: a worker that finds no usable token takes the
row's renewal lease (`renewing_by`/`renewing_until`, one guarded UPDATE that works alike on
SQLite and PostgreSQL), reads the row again, and only then calls the token endpoint; the
others poll the row until the new token is there. A lease rather than a row lock held across
the HTTP call: SQLite's lock is the whole database's, and a lease also ends by itself when its
holder dies. After a 401, only the worker whose refused token is still the cached one renews
(Keliweb revokes a token on refresh, so two renewals would churn); the others take the new one.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from providers.base import Provider
from providers.errors import (
    ProviderAuthError,
    ProviderTransientError,
    ProviderValidationError,
)
from providers.http import SIGN_IN, ApiRequest
from providers.models import AccessToken

#: Renew a token this long before the provider says it expires.
EXPIRY_MARGIN = timedelta(seconds=60)
#: How often a worker waiting for another's renewal reads the row again.
RENEWAL_POLL_SECONDS = 0.05
#: What `reauthorize` refuses when this provider held no token: any cached one (a forced renewal).
ANY_TOKEN = object()


@dataclass
class Token:
    access_token: str
    refresh_token: str = ""
    expires_in: float | None = None


class TokenAuthProvider(Provider):
    #: How the bearer token is sent.
    auth_scheme: ClassVar[str] = "Bearer"
    #: Used when the provider's answer does not say how long a token lives.
    default_token_lifetime: ClassVar[int] = 3600

    _token: Token | None = None
    #: The token a 401 refused (ANY_TOKEN: whatever is cached), until a new one is in hand.
    _refused: str | object | None = None

    # --- vendor hooks (pure) -----------------------------------------------------------
    def build_token_request(self, refresh_token: str = "") -> ApiRequest:
        raise NotImplementedError

    def parse_token(self, data: Any) -> Token:
        raise NotImplementedError

    def static_token(self) -> str:
        """A token pasted by the admin, used as-is and never refreshed ('' when none)."""
        return ""

    # --- the flow ------------------------------------------------------------------------
    def authorize(self, request: ApiRequest) -> None:
        request.headers["Authorization"] = f"{self.auth_scheme} {self.access_token()}"

    def reauthorize(self) -> bool:
        """The token was refused (a 401): the next access_token() gets a new one, unless
        another worker has already replaced the refused one in the cache."""
        if self.static_token():
            return False
        self._refused = self._token.access_token if self._token else ANY_TOKEN
        self._token = None
        return True

    def access_token(self) -> str:
        static = self.static_token()
        if static:
            return static
        if self._token is None:
            self._token = self._shared_token() if self.account.pk is not None else self._request_token()
            self._refused = None
        self.redactor.add(self._token.access_token)
        return self._token.access_token

    def _usable(self, row: AccessToken | None) -> Token | None:
        """The cached token, unless missing, near its expiry, or the one just refused."""
        if row is None or not row.secret:
            return None
        values = row.secret.reveal()
        token = Token(values.get("access_token", ""), values.get("refresh_token", ""))
        if not token.access_token or self._refused is ANY_TOKEN or token.access_token == self._refused:
            return None
        if row.expires_at and row.expires_at - EXPIRY_MARGIN > timezone.now():
            return token
        return None

    def lease_seconds(self) -> float:
        """How long a renewal may hold the lease: a refresh and a full grant, each bounded by
        the account's timeout (connect, then read) and the rate limit's longest wait."""
        rate_wait = float(getattr(settings, "SYNC_RATE_MAX_WAIT", 0) or 0)
        return 2 * (2 * float(self.account.timeout) + rate_wait) + 5

    def _shared_token(self) -> Token:
        rows = AccessToken.objects.filter(account_id=self.account.pk)
        holder = uuid.uuid4().hex
        lease = timedelta(seconds=self.lease_seconds())
        give_up_at = time.monotonic() + 2 * lease.total_seconds()
        while True:
            row = rows.first() or AccessToken.objects.get_or_create(account_id=self.account.pk)[0]
            token = self._usable(row)
            if token:
                return token
            now = timezone.now()
            free = Q(renewing_until__isnull=True) | Q(renewing_until__lt=now)
            if rows.filter(free).update(renewing_by=holder, renewing_until=now + lease):
                try:
                    return self._renew(rows, holder)
                finally:  # a failed renewal frees the lease at once for the next worker
                    self._release(rows, holder)
            if time.monotonic() > give_up_at:
                raise ProviderTransientError(
                    "Another worker has been signing in to the provider for too "
                    "long; the call will be tried again."
                )
            time.sleep(RENEWAL_POLL_SECONDS)

    @staticmethod
    def _release(rows, holder: str) -> None:
        """Give the lease back after a failed renewal (a successful one gave it back with the
        token). A row made only to hold the lease (no token was ever stored: no expiry) goes."""
        rows.filter(renewing_by=holder, expires_at__isnull=True).delete()
        rows.filter(renewing_by=holder).update(renewing_by="", renewing_until=None)

    def _renew(self, rows, holder: str) -> Token:
        """Inside the lease: the row again (a renewal may have just ended), then the call."""
        row = rows.first()
        token = self._usable(row)
        if token:
            return token
        values = row.secret.reveal() if row is not None and row.secret else {}
        token = None
        # A 401 refused the access token: its refresh token is not trusted either (a full grant);
        # near expiry, the refresh grant keeps the session.
        if self._refused is None and values.get("refresh_token"):
            self.redactor.add(values["refresh_token"])
            try:
                token = self._request_token(refresh_token=values["refresh_token"])
            except ProviderAuthError:
                pass  # refresh token expired or revoked: fall back to a full grant
        if token is None:
            token = self._request_token()
        lifetime = token.expires_in or self.default_token_lifetime
        # Stored only while the lease is still ours: a credentials change deletes the row, and a
        # token obtained with the old credentials must not be cached again.
        rows.filter(renewing_by=holder).update(
            secret={"access_token": token.access_token, "refresh_token": token.refresh_token},
            expires_at=timezone.now() + timedelta(seconds=float(lifetime)),
            obtained_at=timezone.now(),
            renewing_by="",
            renewing_until=None,
        )
        return token

    def _request_token(self, refresh_token: str = "") -> Token:
        """The token call itself (no database)."""
        request = self.build_token_request(refresh_token)
        request.purpose = SIGN_IN  # recorded as signing in, not as the operation that needed it
        try:
            data = self.interpret(self.http.send(request))
        except ProviderTransientError as exc:
            # A token call creates nothing: whatever happened to it, the ticket call that
            # needed the token was never sent, so it is safe to retry (not "outcome unknown").
            raise ProviderTransientError(exc.message, http_status=exc.http_status) from exc
        except (ProviderValidationError, ProviderAuthError) as exc:
            # Token endpoints answer 400 invalid_grant / 401 invalid_client for bad secrets.
            raise ProviderAuthError(
                f"Authentication failed: {exc.message}", http_status=exc.http_status
            ) from exc
        # Not "outcome unknown" either (ProviderResponseError): no ticket call was sent.
        no_token = ProviderTransientError("The token answer has no access token.", http_status=200)
        try:
            token = self.parse_token(data)
        except (KeyError, TypeError, ValueError):
            raise no_token from None  # the cause may quote the token answer, token included
        if not token.access_token:
            raise no_token
        self.redactor.add(token.access_token)
        self.redactor.add(token.refresh_token)
        return token
