"""How a generic account signs its calls: one function per auth scheme (schema.AUTH_SCHEMES).

The token scheme (oauth2) lives on the provider itself, on top of providers/tokens.py
(single flight, cached encrypted, renewed after a 401); the others are pure header or query
additions. Every value that carries a secret is added to the provider's Redactor before the
request is sent or described, so no record, preview or error shows it.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import jwt

from providers.generic.schema import token_fields
from providers.generic.template import OMITTED, as_text, first_value
from providers.http import ApiRequest
from providers.tokens import Token

if TYPE_CHECKING:
    from providers.generic.provider import GenericProvider

DEFAULT_TOKEN_PATH = "access_token"  # noqa: S105 - a response path, not a secret
DEFAULT_REFRESH_TOKEN_PATH = "refresh_token"  # noqa: S105 - a response path, not a secret
DEFAULT_EXPIRES_IN_PATH = "expires_in"


def basic_value(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def rendered_headers(provider: GenericProvider, templates: dict[str, str], context: dict[str, Any]) -> dict:
    headers = {}
    for name, value in provider.render(templates, context).items():
        if value is not OMITTED:
            headers[name] = as_text(value)
    return headers


def sign(provider: GenericProvider, request: ApiRequest) -> None:
    """Add the configured credentials to `request` (not for oauth2: see GenericProvider)."""
    auth = provider.auth
    scheme = auth.get("scheme", "none")
    context = provider.auth_context()
    added: dict[str, str] = {}
    if scheme == "bearer":
        header = auth.get("header") or "Authorization"
        added[header] = f"{auth.get('prefix', 'Bearer ')}{provider.credential('token')}"
    elif scheme == "basic":
        added["Authorization"] = basic_value(provider.credential("username"), provider.credential("password"))
    elif scheme == "header":
        added.update(rendered_headers(provider, auth.get("headers") or {}, context))
    elif scheme == "api_key":
        key = provider.credential("api_key")
        provider.redactor.add(quote(key, safe=""))
        if auth.get("in", "header") == "query":
            separator = "&" if "?" in request.path else "?"
            request.path += separator + urlencode({auth["name"]: key}, quote_via=quote)
        else:
            added[auth["name"]] = key
    elif scheme == "jwt_hs256":
        added.update(jwt_headers(provider, request, context))
    for name, value in added.items():
        provider.redactor.add(value)
        request.headers[name] = value


def jwt_headers(provider: GenericProvider, request: ApiRequest, context: dict[str, Any]) -> dict[str, str]:
    auth = provider.auth
    body = request.json if request.json is not None else (request.form or {})
    claims = provider.render(auth.get("claims") or {}, {**context, "body": body})
    token = jwt.encode(claims, provider.credential("signing_key"), algorithm="HS256")
    provider.redactor.add(token)
    headers = rendered_headers(provider, auth.get("headers") or {}, context)
    headers[auth["header"]] = f"{auth.get('prefix', '')}{token}"
    return headers


# --- oauth2 (the provider's TokenAuthProvider hooks call these) --------------------------------
def token_request(provider: GenericProvider, refresh_token: str = "") -> ApiRequest:
    auth = provider.auth
    context = provider.auth_context()
    if refresh_token:
        fields: dict[str, Any] = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if auth.get("client_auth") != "basic":
            fields["client_id"] = provider.credentials.get("client_id") or OMITTED
            fields["client_secret"] = provider.credentials.get("client_secret") or OMITTED
        fields = {key: value for key, value in fields.items() if value is not OMITTED}
    else:
        fields = provider.render(token_fields(auth), context)
    headers = {
        **rendered_headers(provider, provider.config.get("headers") or {}, context),
        **rendered_headers(provider, auth.get("headers") or {}, context),
    }
    if auth.get("client_auth") == "basic":
        value = basic_value(provider.credential("client_id"), provider.credential("client_secret"))
        provider.redactor.add(value)
        headers["Authorization"] = value
    for value in headers.values():
        provider.redactor.add(value)
    url = auth["token_url"]
    absolute = url.startswith(("http://", "https://"))
    request = ApiRequest("POST", "" if absolute else url, headers=headers, url=url if absolute else None)
    body_type = auth.get("body_type", "form")
    if body_type == "json":
        request.json = fields
    else:
        request.form = {key: as_text(value) for key, value in fields.items()}
        request.multipart = body_type == "multipart"
    return request


def parse_token(provider: GenericProvider, data: Any) -> Token:
    auth = provider.auth
    token = first_value(data, auth.get("token_path") or DEFAULT_TOKEN_PATH)
    refresh = first_value(data, auth.get("refresh_token_path") or DEFAULT_REFRESH_TOKEN_PATH)
    try:
        expires_in = float(first_value(data, auth.get("expires_in_path") or DEFAULT_EXPIRES_IN_PATH))
    except (TypeError, ValueError):
        expires_in = None  # absent or unreadable: the configured lifetime applies
    if auth.get("refresh") is False:
        refresh = None
    return Token(
        access_token=as_text(token) if isinstance(token, (str, int)) else "",
        refresh_token=as_text(refresh) if isinstance(refresh, (str, int)) else "",
        expires_in=expires_in,
    )
