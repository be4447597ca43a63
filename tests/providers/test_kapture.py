"""Kapture CX: payload builders and parsers on the seed (003), then the adapter against the
sandbox over HTTP."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.errors import (
    ProviderAuthError,
    ProviderNotFoundError,
    ProviderValidationError,
)
from providers.kapture import KaptureProvider, KaptureTicketForm
from providers.models import ProviderAccount
from tickets.models import Ticket

SEEDS = Path(__file__).resolve().parent / "seeds"  # the vendors' own excerpts


def seed_response() -> dict:
    """The success body exactly as seed 003 shows it."""
    text = (SEEDS / "003_608b1fef07f7d4dc.txt").read_text()
    start = text.index('```json\n{\n    "ticket"') + len("```json\n")
    return json.loads(text[start : text.index("```", start)])


def unsaved_account(**kwargs) -> ProviderAccount:
    account = ProviderAccount(
        pk=999, name="k", kind="kapture", base_url="https://devapi.kapturecrm.com", timeout=2, **kwargs
    )
    account.set_credentials({"token": "tok-SECRET-123"})
    return account


def unsaved_ticket(**kwargs) -> Ticket:
    defaults = {
        "reference": "TC-000042",
        "title": "TEST 1",
        "description": "Printer on fire",
        "requester_email": "xyz@gmail.com",
        "status": "new",
    }
    return Ticket(**{**defaults, **kwargs})


# --- pure hooks -----------------------------------------------------------------------------
def test_create_payload_is_a_json_array_with_the_documented_keys():
    account = unsaved_account(settings={"extra_keys": {"channel": "console"}})
    ticket = unsaved_ticket(
        due_at=datetime(2024, 4, 19, 14, 19, 11, tzinfo=UTC), extra={"extra_keys": {"order_id": "A-17"}}
    )
    request = KaptureProvider(account).build_create(ticket)
    assert request.method == "POST"
    assert request.path == "/add-ticket-from-other-source.html/v.2.0"
    assert request.json == [
        {
            "channel": "console",
            "order_id": "A-17",
            "title": "TEST 1",
            "ticket_details": "Printer on fire\n\n[Ticket Console TC-000042]",
            "due_date": "2024-04-19 14:19:11",
            "email_id": "xyz@gmail.com",
        }
    ]


def test_seed_success_body_gives_ticket_id_url_and_status():
    ref = KaptureProvider(unsaved_account()).parse_create(seed_response(), unsaved_ticket())
    assert ref.remote_id == "713516551148"
    assert ref.remote_number == "530348198"
    assert ref.remote_url == (
        "https://devapi.kapturecrm.com/employee/view-task-detail.html?detail=5/530348198/713516551148"
    )
    assert ref.remote_status == "US"


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        ({"message": "Invalid Auth Key", "status": "failed"}, ProviderAuthError, None),
        ({"message": "title is missing", "status": "failed"}, ProviderValidationError, "title"),
        ({"message": "No Data found/ticket_id is missing", "status": "failed"}, ProviderNotFoundError, None),
        ({"message": "Invalid Json.", "status": "failed"}, ProviderValidationError, None),
    ],
)
def test_http_200_failure_bodies_are_errors_with_kaptures_message(body, error, field):
    with pytest.raises(error) as raised:
        KaptureProvider(unsaved_account()).check_body(body)
    assert raised.value.message == body["message"]
    if field:
        assert raised.value.field_errors == {field: [body["message"]]}


def test_update_maps_console_status_to_sub_status_and_carries_comment():
    ticket = unsaved_ticket(remote_id="713516551148", status="resolved", extra={"queue": "L2"})
    request = KaptureProvider(unsaved_account()).build_reply(ticket, "Fixed the toner.")
    assert request.path == "/update-ticket-from-other-source.html/v.2.0"
    assert request.json == [
        {
            "ticket_id": "713516551148",
            "sub_status": "RS",
            "queue": "L2",
            "comment": "Fixed the toner.",
        }
    ]


def test_fetch_batches_ids_comma_separated_in_an_object_body():
    provider = KaptureProvider(unsaved_account())
    tickets = [unsaved_ticket(remote_id=str(n)) for n in (11, 12, 13)]
    assert provider.build_fetch(tickets).json == {"ticket_ids": "11,12,13"}


def test_extra_form_refuses_a_bad_callback_time_and_reserved_keys():
    form = KaptureTicketForm(data={"callback_time": "24/11/2026 9:30", "extra_keys": {"title": "x"}})
    assert not form.is_valid()
    assert "yyyy-MM-dd hh:mm:ss" in form.errors["callback_time"][0]
    assert "title" in form.errors["extra_keys"][0]


# --- contract: the adapter against the sandbox over HTTP -------------------------------------


@pytest.mark.django_db
def test_create_update_fetch_and_reply_against_the_sandbox(sandbox, account_factory):
    account = account_factory("kapture")
    provider = KaptureProvider(account)
    ticket = unsaved_ticket(account=account)
    ref = provider.create(ticket)
    assert ref.remote_id and ref.remote_url.endswith(ref.remote_id)
    stored = sandbox.state("kapture")["tickets"]
    assert [t["title"] for t in stored] == ["TEST 1"]
    assert "[Ticket Console TC-000042]" in stored[0]["ticket_details"]

    ticket.remote_id, ticket.status = ref.remote_id, "closed"
    provider.update(ticket)
    provider.reply(ticket, "Closing: replaced the toner.")
    [remote] = sandbox.state("kapture")["tickets"]
    assert remote["substatus"] == "CL"
    assert remote["comments"][0]["comment"] == "Closing: replaced the toner."

    [state] = provider.fetch([ticket])
    assert (state.remote_id, state.remote_status) == (ref.remote_id, "CL")
    assert provider.console_status_for(state.remote_status) == "closed"


@pytest.mark.django_db
def test_wrong_token_is_an_auth_error_with_kaptures_message(sandbox, account_factory):
    account = account_factory("kapture", credentials={"token": "not-the-token"})
    with pytest.raises(ProviderAuthError, match="Invalid Auth Key"):
        KaptureProvider(account).create(unsaved_ticket())
    assert sandbox.state("kapture")["tickets"] == []


@pytest.mark.django_db
def test_missing_title_is_refused_by_kapture_as_a_validation_error(sandbox, account_factory):
    provider = KaptureProvider(account_factory("kapture"))
    with pytest.raises(ProviderValidationError, match="title is missing") as raised:
        provider.create(unsaved_ticket(title="  "))
    assert raised.value.field_errors == {"title": ["title is missing"]}


@pytest.mark.django_db
def test_connection_test_accepts_the_right_token_only(sandbox, account_factory):
    assert "accepted" in KaptureProvider(account_factory("kapture")).test_connection()
    wrong = account_factory("kapture", name="wrong", credentials={"token": "nope"})
    with pytest.raises(ProviderAuthError):
        KaptureProvider(wrong).test_connection()
