"""Motadata ServiceOps v1 emulator (docs/providers.md §2, seed 001).

Strict like the real service: OAuth password and refresh grants at `/api/oauth/token` with
Basic client auth and form fields, tokens that expire (7199 s, or at once through
`expire_tokens()`), a Bearer check on every API call, JSON-only incident bodies, required
fields, enums, locations and custom fields checked, and uploaded files the only valid
`attachmentsRefNames`.

Inferred (no source states it): token errors in Spring Security OAuth2's shape, echoing the
token as Spring does; incident failures as the success envelope with another `returnCode`,
a `userMessage` and HTTP 400 (404 for an unknown incident); 415 for a body that is not JSON;
the form description's shape; the value keys of custom field types other than STRING.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
import secrets
import time
import uuid

from providers.sandbox.http import BadRequest, Emulator, Reply, SandboxRequest, bearer_token

TOKEN_LIFETIME = 7199
IMPACTS = ("LOW", "ONUSER", "ONDEPARTMENT", "ONBUSINESS")
LEVELS = ("LOW", "MEDIUM", "HIGH", "URGENT")
STATUSES = ("Open", "In Progress", "Pending", "Resolved", "Closed")
LOCATIONS = ("Ahmedabad", "Pune", "Remote")
MODULES = ("request", "incident", "problem", "change")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: type code -> (name, value key, Python types of the value or of each list item, is a list)
VALUE_TYPES = {
    1: ("STRING", "stringValue", (str,), False),
    2: ("INTEGER", "integerValue", (int,), False),
    3: ("DOUBLE", "doubleValue", (int, float), False),
    4: ("BOOLEAN", "booleanValue", (bool,), False),
    5: ("LONG", "longValue", (int,), False),
    7: ("INTEGER LIST", "integerListValue", (int,), True),
    8: ("STRING LIST", "stringListValue", (str,), True),
    10: ("BIG STRING", "bigStringValue", (str,), False),
}
#: The account's custom fields: id -> (name, type). 1 and 35 are the seed example's ids.
CUSTOM_FIELDS = {
    1: ("Resolution Code", 1),
    35: ("Vendor Reference", 1),
    36: ("Floor", 2),
    37: ("VIP Requester", 4),
    38: ("Affected Services", 8),
    39: ("Steps to Reproduce", 10),
}
UNAUTHORIZED = {
    "error": "unauthorized",
    "error_description": "Full authentication is required to access this resource",
}
TEXT_FIELDS = ("subject", "description", "categoryName", "requesterEmail", "requesterName", "locationName")
REQUIRED = {"subject": "Subject", "categoryName": "Category Name", "requesterEmail": "Requester Email"}
ENUMS = {"impact": IMPACTS, "priority": LEVELS, "urgency": LEVELS}
UPDATABLE = (*TEXT_FIELDS, "impact", "priority", "urgency", "tags", "ccEmailSet", "status")


def failure(message: str, status: int = 400, code: str = "FAIL") -> Reply:
    return Reply.json({"returnCode": code, "status": 1, "userMessage": message, "id": None}, status)


def oauth_error(error: str, description: str, status: int) -> Reply:
    return Reply.json({"error": error, "error_description": description}, status)


def now_ms() -> int:
    return int(time.time() * 1000)


class MotadataEmulator(Emulator):
    name = "motadata"
    credential_keys = ("client_id", "client_secret", "username", "password")
    tickets_key = "incidents"
    refused_create = {"ticket": {"title": ""}, "settings": {}, "words": "Subject is required."}

    @classmethod
    def stored_fields(cls, held: dict) -> dict[str, str]:
        return {"title": held["subject"], "description": held["description"], "status": held["status"]}

    def reset(self) -> None:
        self.incidents: dict[int, dict] = {}
        self.files: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}  # access token -> {expires_at, username}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> username
        self.tokens_issued = 0
        self.grants: dict[str, int] = {"password": 0, "refresh_token": 0}
        self.ids = itertools.count(1)

    def routes(self):
        return [
            ("POST", r"/api/oauth/token", self.token),
            ("POST", r"/api/v1/incident", self.create),
            ("GET", r"/api/v1/incident/(?P<id>[^/]+)", self.get),
            ("POST", r"/api/v1/incident/(?P<id>[^/]+)", self.update),
            ("GET", r"/api/ususer/form/(?P<module>[^/]+)", self.form),
            ("POST", r"/api/oprfile", self.upload),
        ]

    def snapshot(self) -> dict:
        return {
            "incidents": list(self.incidents.values()),
            "files": list(self.files.values()),
            "tokens_issued": self.tokens_issued,
            "grants": dict(self.grants),
        }

    def expire_tokens(self) -> None:
        for info in self.tokens.values():
            info["expires_at"] = 0.0

    # --- OAuth ----------------------------------------------------------------------------
    def client_ok(self, request: SandboxRequest) -> Reply | None:
        header = request.header("authorization")
        if not header.lower().startswith("basic "):
            return Reply.json(UNAUTHORIZED, 401)
        try:
            client_id, _, secret = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id = secret = ""
        expected = (self.credentials.get("client_id"), self.credentials.get("client_secret"))
        if (client_id, secret) != expected:
            return oauth_error("invalid_client", "Bad client credentials", 401)
        return None

    def token(self, request: SandboxRequest) -> Reply:
        refused = self.client_ok(request)
        if refused:
            return refused
        # Spring reads grant parameters from form bodies only; a JSON body has none.
        form_types = ("application/x-www-form-urlencoded", "multipart/form-data")
        fields = request.form()[0] if request.content_type in form_types else {}
        grant = fields.get("grant_type", "")
        if not grant:
            return oauth_error("invalid_request", "Missing grant type", 400)
        if grant == "password":
            username, password = fields.get("username", ""), fields.get("password", "")
            if (username, password) != (self.credentials.get("username"), self.credentials.get("password")):
                return oauth_error("invalid_grant", "Bad credentials", 400)
            return self.issue(username, grant, secrets.token_urlsafe(32))
        if grant == "refresh_token":
            refresh = fields.get("refresh_token", "")
            if refresh not in self.refresh_tokens:
                return oauth_error("invalid_grant", f"Invalid refresh token: {refresh}", 400)
            return self.issue(self.refresh_tokens[refresh], grant, refresh)
        return oauth_error("unsupported_grant_type", f"Unsupported grant type: {grant}", 400)

    def issue(self, username: str, grant: str, refresh: str) -> Reply:
        access = secrets.token_urlsafe(32)
        self.tokens[access] = {"expires_at": time.time() + TOKEN_LIFETIME, "username": username}
        self.refresh_tokens[refresh] = username  # Spring reuses refresh tokens by default
        self.tokens_issued += 1
        self.grants[grant] += 1
        return Reply.json(
            {
                "access_token": access,
                "token_type": "bearer",
                "refresh_token": refresh,
                "expires_in": TOKEN_LIFETIME,
                "scope": "other-api-scope",
                "jti": str(uuid.uuid4()),
            }
        )

    def bearer_refused(self, request: SandboxRequest) -> Reply | None:
        token = bearer_token(request)
        if not token:
            return Reply.json(UNAUTHORIZED, 401)
        info = self.tokens.get(token)
        if info is None:
            description = f"Invalid access token: {token}"
        elif info["expires_at"] <= time.time():
            description = f"Access token expired: {token}"
        else:
            return None
        challenge = 'Bearer error="invalid_token", error_description="Access token rejected"'
        return Reply.json(
            {"error": "invalid_token", "error_description": description},
            401,
            {"WWW-Authenticate": challenge},
        )

    # --- incidents ------------------------------------------------------------------------
    def json_body(self, request: SandboxRequest) -> tuple[dict | None, Reply | None]:
        if request.content_type != "application/json":
            return None, Reply.json(
                {
                    "timestamp": now_ms(),
                    "status": 415,
                    "error": "Unsupported Media Type",
                    "message": f"Content type '{request.header('content-type')}' not supported",
                    "path": request.path,
                },
                415,
            )
        try:
            body = request.json()
        except BadRequest:
            return None, failure("The request body is not valid JSON.")
        if not isinstance(body, dict):
            return None, failure("The request body must be a JSON object.")
        return body, None

    def invalid(self, body: dict, *, creating: bool) -> str | None:
        """Motadata's message for the first thing wrong with `body`, or None."""
        for key, label in REQUIRED.items():
            if (creating or key in body) and not str(body.get(key) or "").strip():
                return f"{label} is required."
        for key in TEXT_FIELDS:
            if body.get(key) is not None and not isinstance(body[key], str):
                return f"{key} must be a string."
        if "requesterEmail" in body and not EMAIL.match(body["requesterEmail"]):
            return f"Requester Email '{body['requesterEmail']}' is not a valid email address."
        for key, allowed in ENUMS.items():
            if key in body and body[key] not in allowed:
                return f"Invalid {key} '{body[key]}'. Allowed values: {', '.join(allowed)}."
        if "status" in body and body["status"] not in STATUSES:
            return f"Invalid status '{body['status']}'. Allowed values: {', '.join(STATUSES)}."
        for key in ("tags", "ccEmailSet", "attachmentsRefNames"):
            value = body.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return f"{key} must be a list of strings."
        for email in body.get("ccEmailSet", []):
            if not EMAIL.match(email):
                return f"ccEmailSet contains an invalid email address: '{email}'."
        location = body.get("locationName")
        if location and location not in LOCATIONS:
            return f"Location '{location}' does not exist."
        for ref in body.get("attachmentsRefNames", []):
            if ref not in self.files:
                return f"Attachment '{ref}' was not uploaded; upload it with /api/oprfile first."
        return self.invalid_custom_fields(body.get("customFieldValueDetails"))

    @staticmethod
    def invalid_custom_fields(details) -> str | None:
        if details is None:
            return None
        if not isinstance(details, dict):
            return "customFieldValueDetails must be an object of field id: value."
        for key, spec in details.items():
            field_id = int(key) if str(key).isdigit() else None
            if field_id not in CUSTOM_FIELDS:
                return f"Custom field '{key}' does not exist."
            name, declared = CUSTOM_FIELDS[field_id]
            if not isinstance(spec, dict) or spec.get("type") != declared:
                return f"Custom field '{key}' ({name}) is of type {declared} ({VALUE_TYPES[declared][0]})."
            _, value_key, types, is_list = VALUE_TYPES[declared]
            value = spec.get(value_key)
            items = value if is_list and isinstance(value, list) else [value]
            wrong = value is not None and (
                (is_list and not isinstance(value, list))
                or any(not isinstance(v, types) or (isinstance(v, bool) and bool not in types) for v in items)
            )
            if value_key not in spec or set(spec) - {"type", value_key} or wrong:
                return f"Custom field '{key}' ({name}) needs a valid '{value_key}'."
        return None

    def create(self, request: SandboxRequest) -> Reply:
        refused = self.bearer_refused(request)
        if refused:
            return refused
        body, error = self.json_body(request)
        if error:
            return error
        message = self.invalid(body, creating=True)
        if message:
            return failure(message)
        incident_id = next(self.ids)
        incident = {
            "id": incident_id,
            "subject": "",
            "description": "",
            "categoryName": "",
            "status": "Open",
            "impact": "LOW",
            "priority": "LOW",
            "urgency": "LOW",
            "tags": [],
            "requesterEmail": "",
            "requesterName": "",
            "ccEmailSet": [],
            "locationName": None,
            "attachmentsRefNames": [],
            "customFieldValueDetails": {},
            "createdTime": now_ms(),
        }
        self.apply(incident, body)
        self.incidents[incident_id] = incident
        return Reply.json({"returnCode": "SUCCESS", "status": 0, "userMessage": None, "id": incident_id})

    def apply(self, incident: dict, body: dict) -> None:
        for key in UPDATABLE:
            if key in body:
                incident[key] = body[key]
        for ref in body.get("attachmentsRefNames", []):
            if ref not in incident["attachmentsRefNames"]:
                incident["attachmentsRefNames"].append(ref)
        incident["customFieldValueDetails"].update(body.get("customFieldValueDetails") or {})
        incident["updatedTime"] = now_ms()

    def incident_for(self, request: SandboxRequest) -> tuple[dict | None, Reply | None]:
        raw = request.match["id"]
        incident = self.incidents.get(int(raw)) if raw.isdigit() else None
        if incident is None:
            return None, failure(f"Incident {raw} not found.", 404, "NOT_FOUND")
        return incident, None

    def get(self, request: SandboxRequest) -> Reply:
        refused = self.bearer_refused(request)
        if refused:
            return refused
        incident, error = self.incident_for(request)
        return error or Reply.json(incident)

    def update(self, request: SandboxRequest) -> Reply:
        refused = self.bearer_refused(request)
        if refused:
            return refused
        incident, error = self.incident_for(request)
        if error:
            return error
        body, error = self.json_body(request)
        if error:
            return error
        message = self.invalid(body, creating=False)
        if message:
            return failure(message)
        self.apply(incident, body)
        return Reply.json({"returnCode": "SUCCESS", "status": 0, "userMessage": None, "id": incident["id"]})

    # --- form description and files --------------------------------------------------------
    def form(self, request: SandboxRequest) -> Reply:
        refused = self.bearer_refused(request)
        if refused:
            return refused
        module = request.match["module"]
        if module not in MODULES:
            return failure(f"Module '{module}' not found.", 404, "NOT_FOUND")
        return Reply.json(
            [
                {
                    "id": field_id,
                    "name": name,
                    "customField": True,
                    "valueType": type_code,
                    "valueTypeName": VALUE_TYPES[type_code][0],
                    "required": False,
                    "module": module,
                }
                for field_id, (name, type_code) in CUSTOM_FIELDS.items()
            ]
        )

    def upload(self, request: SandboxRequest) -> Reply:
        refused = self.bearer_refused(request)
        if refused:
            return refused
        if request.content_type != "multipart/form-data":
            return Reply.json(
                {
                    "timestamp": now_ms(),
                    "status": 415,
                    "error": "Unsupported Media Type",
                    "message": f"Content type '{request.header('content-type')}' not supported",
                    "path": "/api/oprfile",
                },
                415,
            )
        files = request.form()[1]
        if "file" not in files:
            return failure("Required request part 'file' is not present.")
        real_name, content = files["file"]
        ref = f"{uuid.uuid4().hex}{real_name[real_name.rfind('.') :] if '.' in real_name else ''}"
        self.files[ref] = {"refFileName": ref, "realName": real_name, "size": len(content)}
        return Reply.json({"refFileName": ref, "realName": real_name, "link": f"/api/download/{ref}"})
