"""Files on tickets: stored with Django storage, sent where the provider takes them."""

import base64

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.helpers import wait_for
from tickets import services
from tickets.models import SyncState

PDF = b"%PDF-1.4 sample invoice contents"


def upload(name="invoice.pdf", content=PDF):
    return SimpleUploadedFile(name, content, content_type="application/pdf")


def synced(ticket):
    def check():
        ticket.refresh_from_db()
        return ticket.sync_state in (SyncState.SYNCED, SyncState.FAILED, SyncState.NEEDS_ATTENTION)

    wait_for(check, message=f"{ticket.reference} did not settle")
    assert ticket.sync_state == SyncState.SYNCED, ticket.last_error
    return ticket


@pytest.mark.worker
def test_keliweb_receives_files_inline_with_the_create(worker, sandbox, account_factory):
    account = account_factory("keliweb", settings={"deptid": 1})
    ticket = services.create_ticket(
        account=account,
        title="Invoice wrong",
        description="See attached",
        requester_email="a@b.example",
        files=[upload()],
    )
    synced(ticket)
    [remote] = sandbox.state("keliweb")["tickets"]
    [sent] = remote["attachments"]
    assert sent["name"] == "invoice.pdf"
    assert base64.b64decode(sent["data_base64"]) == PDF


@pytest.mark.worker
def test_motadata_uploads_first_then_references_the_file(worker, sandbox, account_factory):
    account = account_factory("motadata")
    ticket = services.create_ticket(
        account=account,
        title="Invoice wrong",
        requester_email="tim@acme.com",
        files=[upload()],
    )
    synced(ticket)
    state = sandbox.state("motadata")
    [stored_file] = state["files"]
    assert stored_file["realName"] == "invoice.pdf" and stored_file["size"] == len(PDF)
    [incident] = state["incidents"]
    assert incident["attachmentsRefNames"] == [stored_file["refFileName"]]
    assert ticket.attachments.get().remote_ref == stored_file["refFileName"]


@pytest.mark.django_db
def test_files_are_refused_where_they_cannot_go(account_factory, settings):
    kapture = services.create_ticket(account=account_factory("kapture"), title="x")
    with pytest.raises(services.TicketActionError, match="Kapture CX does not take attachments"):
        services.add_attachment(ticket=kapture, upload=upload())

    settings.ATTACHMENT_MAX_BYTES = 10
    keliweb = services.create_ticket(account=account_factory("keliweb"), title="x")
    with pytest.raises(services.TicketActionError, match="larger than"):
        services.add_attachment(ticket=keliweb, upload=upload())
    assert not keliweb.attachments.exists()
