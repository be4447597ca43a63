"""Bearer tokens that a provider issues (OAuth password grant, key exchange).

Shared by Motadata, Keliweb and Particle Space: the token is cached in the database
(`AccessToken`, encrypted) so all workers use one token per account; it is refreshed before
it expires and once after a 401. Vendors describe only their token request and answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

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
        if self.static_token():
            return False
        if self.account.pk is not None:
            AccessToken.objects.filter(account_id=self.account.pk).delete()
        self._token = None
        return True

    def access_token(self) -> str:
        static = self.static_token()
        if static:
            return static
        if self._token is None:
            self._token = self._cached_token() or self._obtain_token()
        self.redactor.add(self._token.access_token)
        return self._token.access_token

    def _cached_token(self) -> Token | None:
        if self.account.pk is None:  # an unsaved account (previews, unit tests): no cache
            return None
        row = AccessToken.objects.filter(account_id=self.account.pk).first()
        if row is None or not row.secret:
            return None
        values = row.secret.reveal()
        if row.expires_at and row.expires_at - EXPIRY_MARGIN > timezone.now():
            return Token(values.get("access_token", ""), values.get("refresh_token", ""))
        if values.get("refresh_token"):
            self.redactor.add(values["refresh_token"])
            try:
                return self._obtain_token(refresh_token=values["refresh_token"])
            except ProviderAuthError:
                pass  # refresh token expired or revoked: fall back to a full grant
        return None

    def _obtain_token(self, refresh_token: str = "") -> Token:
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
        lifetime = token.expires_in or self.default_token_lifetime
        if self.account.pk is None:
            return token
        AccessToken.objects.update_or_create(
            account_id=self.account.pk,
            defaults={
                "secret": {"access_token": token.access_token, "refresh_token": token.refresh_token},
                "expires_at": timezone.now() + timedelta(seconds=float(lifetime)),
            },
        )
        return token
