"""Kapture CX emulator (docs/providers.md §4, seed 003).

Strict like the real API: `Authorization: Basic <token>`, a JSON *array* for add and
update, a JSON *object* for search, and failures answered HTTP 200 with
`{"message": ..., "status": "failed"}` (the documented messages).
"""

from __future__ import annotations

import itertools
from datetime import datetime

from providers.sandbox.http import Emulator, Reply, SandboxRequest

INVALID_AUTH = {"message": "Invalid Auth Key", "status": "failed"}
INVALID_JSON = {"message": "Invalid Json.", "status": "failed"}
NO_DATA = {"message": "No Data found/ticket_id is missing", "status": "failed"}
CLOSED_SUB_STATUSES = {"CL", "RS"}


def failed(message: str) -> Reply:
    return Reply.json({"message": message, "status": "failed"})


class KaptureEmulator(Emulator):
    name = "kapture"
    credential_keys = ("token",)
    ticket_id_key = "ticket_id"
    refused_create = {"ticket": {"title": ""}, "settings": {}, "words": "title is missing"}

    @classmethod
    def stored_fields(cls, held: dict) -> dict[str, str]:
        return {"title": held["title"], "description": held["ticket_details"], "status": held["substatus"]}

    def reset(self) -> None:
        self.tickets: dict[str, dict] = {}
        self.ids = itertools.count(530348198)
        #: A message the next add or update is refused with (HTTP 200, "status": "failed").
        self.refuse_next = ""

    def controls(self):
        return {
            # A Kapture agent moves a ticket to another sub-status in Kapture's own UI.
            "set-substatus": lambda data: self.set_substatus(str(data["ticket_id"]), str(data["substatus"])),
            # Kapture turns the next add or update down, as it does a request it finds invalid.
            "refuse-next": lambda data: self.refuse(str(data["message"])),
        }

    def set_substatus(self, ticket_id: str, substatus: str) -> dict:
        ticket = self.tickets[ticket_id]
        ticket["substatus"] = substatus
        ticket["status"] = "C" if substatus in CLOSED_SUB_STATUSES else "P"
        ticket["history"].append(
            {"substatus": substatus, "date": datetime.now().strftime("%Y-%m-%d %H:%M:%S")}
        )
        return {"ok": True}

    def refuse(self, message: str) -> dict:
        self.refuse_next = message
        return {"ok": True}

    def refusal(self) -> Reply | None:
        message, self.refuse_next = self.refuse_next, ""
        return failed(message) if message else None

    def routes(self):
        return [
            ("POST", r"/add-ticket-from-other-source\.html/v\.2\.0", self.add),
            ("POST", r"/update-ticket-from-other-source\.html/v\.2\.0", self.update),
            ("POST", r"/search-ticket-by-ticket-id\.html/v\.2\.0", self.search),
        ]

    def snapshot(self) -> dict:
        return {"tickets": list(self.tickets.values())}

    def authorized(self, request: SandboxRequest) -> bool:
        return request.header("authorization") == f"Basic {self.credentials.get('token')}"

    def add(self, request: SandboxRequest) -> Reply:
        if not self.authorized(request):
            return Reply.json(INVALID_AUTH)
        items = request.json()
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return Reply.json(INVALID_JSON)
        if refused := self.refusal():
            return refused
        if any(not str(item.get("title") or "").strip() for item in items):
            return failed("title is missing")
        for item in items:
            due = str(item.get("due_date") or "")
            if due:
                try:
                    datetime.strptime(due, "%Y-%m-%d %H:%M:%S")
                except ValueError:
                    return failed("due_date is invalid")
        created = [self.create(item) for item in items]
        return Reply.json(self.answer(created[0]))

    def create(self, item: dict) -> dict:
        number = next(self.ids)
        ticket_id = str(713516551148 + number - 530348198)
        now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        ticket = {
            "id": number,
            "ticket_id": ticket_id,
            "title": item["title"],
            "ticket_details": item.get("ticket_details", ""),
            "due_date": item.get("due_date") or now,
            "email_id": item.get("email_id", ""),
            "status": "P",
            "substatus": "US",
            "extra": {
                k: v for k, v in item.items() if k not in ("title", "ticket_details", "due_date", "email_id")
            },
            "comments": [],
            "history": [{"substatus": "US", "date": now}],
            "date": now,
        }
        self.tickets[ticket_id] = ticket
        return ticket

    def answer(self, ticket: dict) -> dict:
        url = f"/employee/view-task-detail.html?detail=5/{ticket['id']}/{ticket['ticket_id']}"
        return {
            "ticket": {
                "id": ticket["id"],
                "type": "O",
                "email": ticket["email_id"],
                "status": "P",
                "ticketId": ticket["ticket_id"],
                "detail": ticket["ticket_details"],
                "substatus": "US",
                "statusName": "Pending",
                "substatusName": "Unattended",
                "date": ticket["date"],
                "taskTitle": ticket["title"],
                "ticketURL": url,
                "folders": ["Inbox"],
            },
            "Additional_details": ticket["extra"],
            "due_date": ticket["due_date"],
            "title": ticket["title"],
            "customer_id": 0,
            "ticket_id": ticket["ticket_id"],
            "Ticket Id": ticket["ticket_id"],
            "ticket_url": f"https://sandbox.kapturecrm.com{url}",
            "status": "success",
        }

    def update(self, request: SandboxRequest) -> Reply:
        if not self.authorized(request):
            return Reply.json(INVALID_AUTH)
        items = request.json()
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return Reply.json(INVALID_JSON)
        if refused := self.refusal():
            return refused
        for item in items:
            if str(item.get("ticket_id") or "") not in self.tickets:
                return Reply.json(NO_DATA)
            if not item.get("sub_status"):
                return failed("sub_status is missing")
            callback = str(item.get("callback_time") or "")
            if callback:
                try:
                    datetime.strptime(callback, "%Y-%m-%d %H:%M:%S")
                except ValueError:
                    return failed("callback_time is invalid")
        now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        for item in items:
            ticket = self.tickets[str(item["ticket_id"])]
            ticket["substatus"] = item["sub_status"]
            ticket["status"] = "C" if item["sub_status"] in CLOSED_SUB_STATUSES else "P"
            for key in ("queue", "disposition", "callback_time"):
                if item.get(key):
                    ticket[key] = item[key]
            if item.get("comment"):
                ticket["comments"].append({"comment": item["comment"], "date": now})
            ticket["history"].append({"substatus": item["sub_status"], "date": now})
        return Reply.json({"status": "success", "message": "Ticket updated successfully"})

    def search(self, request: SandboxRequest) -> Reply:
        if not self.authorized(request):
            return Reply.json(INVALID_AUTH)
        body = request.json()
        if not isinstance(body, dict):
            return Reply.json(INVALID_JSON)
        ids = [i.strip() for i in str(body.get("ticket_ids") or "").split(",") if i.strip()]
        found = [self.tickets[i] for i in ids if i in self.tickets]
        if not found:
            return Reply.json(NO_DATA)
        return Reply.json(
            [
                {
                    "task_details": {
                        "ticket_id": t["ticket_id"],
                        "id": t["id"],
                        "title": t["title"],
                        "status": t["status"],
                        "substatus": t["substatus"],
                        "detail": t["ticket_details"],
                        "email": t["email_id"],
                    },
                    "history": t["history"],
                    "additional_info": t["extra"],
                }
                for t in found
            ]
        )
