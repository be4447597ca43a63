"""The sandbox's tiny HTTP toolkit: requests, replies and the emulator base class."""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, ClassVar
from urllib.parse import parse_qs

#: The console reference the providers write into a ticket's text (Provider.marker).
CONSOLE_MARKER = re.compile(r"\[Ticket Console (TC-\d+)\]")


class BadRequest(Exception):
    pass


@dataclass
class SandboxRequest:
    method: str
    path: str  # below the emulator's prefix, e.g. "/api/v1/incident/2"
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    match: re.Match | None = None

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    @property
    def content_type(self) -> str:
        return self.header("content-type").split(";")[0].strip().lower()

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise BadRequest("Invalid Json.") from exc

    def form(self) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
        """Fields and files of a urlencoded or multipart body."""
        if self.content_type == "multipart/form-data":
            head = f"Content-Type: {self.header('content-type')}\r\n\r\n".encode()
            message = BytesParser(policy=HTTP).parsebytes(head + self.body)
            fields: dict[str, str] = {}
            files: dict[str, tuple[str, bytes]] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if part.get_filename():
                    files[name] = (part.get_filename(), payload)
                else:
                    fields[name] = payload.decode("utf-8", "replace")
            return fields, files
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}, {}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(
            status,
            json.dumps(data).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


Handler = Callable[[SandboxRequest], Reply]


class Emulator:
    """One provider's API. Subclasses list routes and keep their state under `self.lock`."""

    name: str = ""  # the URL prefix: http://host:port/<name>/...
    credential_keys: tuple[str, ...] = ()

    def __init__(self, credentials: dict[str, str] | None = None) -> None:
        self.lock = threading.RLock()
        self.credentials = dict(credentials or {})
        self.reset()

    def reset(self) -> None:
        """Forget every ticket and token."""

    def routes(self) -> list[tuple[str, str, Handler]]:
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        """Everything the emulator holds, for tests and the demo's inspection."""
        return {}

    def expire_tokens(self) -> None:
        """Make every issued access token expired (token-expiry tests)."""

    def controls(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        """What people do in the provider's own UI, as `POST /_sandbox/<name>/<action>` with a
        JSON body (tests, demos). Each takes the body and answers a JSON object; a KeyError
        or ValueError is answered as a 400."""
        return {}

    # --- what the contract and fault suites ask (tests/providers/test_contract.py) ---------
    #: The snapshot key of the tickets this provider holds.
    tickets_key: ClassVar[str] = "tickets"
    #: The key of a held ticket that holds the id the provider's ticket calls use.
    ticket_id_key: ClassVar[str] = "id"
    #: How to make this emulator refuse a create: console ticket values and account settings it
    #: turns down, and words its refusal (the provider's validation error) carries.
    refused_create: ClassVar[dict[str, Any]] = {"ticket": {"title": ""}, "settings": {}, "words": ""}

    @classmethod
    def held_tickets(cls, snapshot: dict[str, Any]) -> list[dict]:
        return snapshot[cls.tickets_key]

    @classmethod
    def held_id(cls, held: dict) -> str:
        return str(held[cls.ticket_id_key])

    @classmethod
    def references(cls, held: dict) -> set[str]:
        """The console references a held ticket names (the marker in its text by default)."""
        return set(CONSOLE_MARKER.findall(json.dumps(held, ensure_ascii=False)))

    @classmethod
    def stored_fields(cls, held: dict) -> dict[str, str]:
        """Title, description (with the console's marker) and status, as this provider stores them."""
        raise NotImplementedError

    @classmethod
    def generate_credentials(cls) -> dict[str, str]:
        return {key: secrets.token_urlsafe(24) for key in cls.credential_keys}

    def compiled_routes(self) -> list[tuple[str, re.Pattern, Handler]]:
        return [(method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in self.routes()]


def bearer_token(request: SandboxRequest) -> str:
    value = request.header("authorization")
    return value[7:].strip() if value.lower().startswith("bearer ") else ""
