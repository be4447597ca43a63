"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import copy
import time

import requests

from providers.models import ProviderAccount
from providers.sandbox.server import SandboxServer


class Sandbox:
    """The running sandbox: URLs, its (random) credentials, faults and state over HTTP."""

    def __init__(self, server: SandboxServer, credentials: dict[str, dict[str, str]]) -> None:
        self.server = server
        self.credentials = credentials

    def base_url(self, vendor: str) -> str:
        return self.server.base_url(vendor)

    def control(self, path: str, payload: dict | None = None) -> dict:
        url = f"{self.server.url}/_sandbox/{path}"
        response = (
            requests.post(url, json=payload or {}, timeout=5)
            if payload is not None
            else (requests.get(url, timeout=5))
        )
        response.raise_for_status()
        return response.json()

    def faults(self, **plan) -> dict:
        return self.control("faults", plan)

    def state(self, vendor: str) -> dict:
        return self.control(f"state/{vendor}")

    def reset(self) -> None:
        self.control("reset", {})


def make_account(sandbox: Sandbox, kind: str, *, name: str | None = None, credentials=None, **fields):
    provider_class = ProviderAccount(kind=kind, api_config=fields.get("api_config") or {}).provider_class
    account = ProviderAccount(
        name=name or f"Sandbox {kind}",
        kind=kind,
        base_url=fields.pop("base_url", None) or sandbox.base_url(kind),
        settings=fields.pop("settings", None) or dict(provider_class.demo_settings),
        # Copies: a test that edits an account's map must not change the provider's defaults.
        status_map=copy.deepcopy(provider_class.default_status_map),
        priority_map=copy.deepcopy(provider_class.default_priority_map),
        timeout=fields.pop("timeout", 3.0),
        **fields,
    )
    account.set_credentials(sandbox.credentials[kind] if credentials is None else credentials)
    account.save()
    return account


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.2, message: str = ""):
    """Poll until `predicate()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout} s")
        time.sleep(interval)


def callback_path(account, secret: str) -> str:
    """Where Knight (the provider that calls back) posts for `account`; the secret is in the path."""
    from django.urls import reverse

    from providers.knight import KnightProvider

    route = KnightProvider.inbound.route
    return reverse("inbound", kwargs={"route": route, "account_id": account.pk, "secret": secret})


def refreshed(obj):
    """`obj` as the database has it now (for polling a row a worker is changing)."""
    obj.refresh_from_db()
    return obj
