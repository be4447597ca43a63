"""A provider admin works in the admin as a new user would: tests each account's connection,
changes the status of every ticket of a filter as one bulk job and watches it finish, then
retries the tickets a job failed on. A real worker runs the jobs and syncs with the sandbox."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from providers.models import ProviderAccount
from tests.helpers import wait_for
from tickets import bulk
from tickets.models import BulkJob, Status, SyncAttempt, SyncState, Ticket

JOB_TIMEOUT_MS = 30_000
KINDS = ("knight", "motadata", "keliweb", "kapture", "particlespace")
UNKNOWN_CREATE = "The outcome of its create is unknown: check the provider, then retry it on its own page"


@pytest.fixture
def provider_admin(transactional_db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-pass")


def admin_sign_in(page: Page, base_url: str, username: str = "root", password: str = "root-pass") -> None:
    page.goto(f"{base_url}/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")  # keyboard submits the form
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def open_tickets(page: Page) -> None:
    """The ticket changelist, from the model list every admin page has."""
    page.locator("#tickets-ticket").get_by_role("link", name="Tickets").first.click()
    expect(page.get_by_role("heading", name="Select ticket to change")).to_be_visible()


def filter_by(page: Page, choice: str) -> None:
    page.locator("#changelist-filter").get_by_role("link", name=choice, exact=True).click()


def run_action(page: Page, action: str, **values: str) -> None:
    """Choose the action (and the values next to it, by label) in the action bar, then Run."""
    bar = page.locator("#changelist-form .actions")
    bar.get_by_label(re.compile(r"^Action:")).select_option(label=action)
    for label, value in values.items():
        bar.get_by_label(re.compile(rf"^{label}\b")).select_option(label=value)
    bar.get_by_role("button", name="Run").click()


def open_job(page: Page, job: BulkJob) -> None:
    """The page the action led to is this job's, and it has finished."""
    label = bulk.ACTIONS[job.action].label
    expect(page.get_by_role("heading", name=f"Bulk job #{job.pk}: {label}")).to_be_visible()
    trail = page.get_by_role("navigation", name="Breadcrumbs").get_by_role("listitem")
    expect(trail).to_have_text(["Home", "Tickets", f"Bulk job #{job.pk}"])
    # No reload: the page polls the job's progress and fills itself in.
    expect(page.locator("#job-counts")).to_contain_text("Done —", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-progress")).to_have_attribute("value", "100")


def job_from(page: Page) -> BulkJob:
    expect(page).to_have_url(re.compile(r"/bulk-jobs/\d+/$"))
    return BulkJob.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[-1]))


def results(page: Page) -> list[list[str]]:
    """The job page's per-reason rows: outcome, reason, number of tickets."""
    return [
        row[:3]
        for row in page.locator("#job-results tbody tr").evaluate_all(
            "rows => rows.map(row => [...row.cells].map(cell => cell.innerText.trim()))"
        )
    ]


def seed(account, count: int, *, start: int = 0, **fields) -> list[Ticket]:
    """Many tickets at once, as tests/tickets/test_bulk.py seeds them (bulk_create skips save(),
    so references are set here); none is queued for sync."""
    return Ticket.objects.bulk_create(
        Ticket(
            account=account,
            reference=f"TC-S{start + i:06d}",
            title=f"Seeded {start + i}",
            revision=1,
            **fields,
        )
        for i in range(count)
    )


def states(tickets: list[Ticket]) -> set[tuple[str, str, int]]:
    return set(
        Ticket.objects.filter(pk__in=[t.pk for t in tickets]).values_list("status", "sync_state", "revision")
    )


def test_a_provider_admin_tests_the_connection_of_each_account(
    page: Page, live_server, account_factory, provider_admin
):
    accounts = [account_factory(kind) for kind in KINDS]
    admin_sign_in(page, live_server.url)
    page.get_by_role("link", name="Provider accounts").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(len(accounts))

    for account in accounts:
        page.get_by_role("link", name=account.name, exact=True).click()
        expect(page.locator("#id_base_url")).to_have_value(account.base_url)
        page.get_by_role("button", name="Test connection").click()
        expect(page.locator(".messagelist .success")).to_have_text(
            re.compile(rf"^{re.escape(account.name)}: .+ \(\d+ ms\)$")
        )
        expect(page.locator(".messagelist .error")).to_have_count(0)
        page.get_by_role("link", name="Provider accounts").first.click()

    # The list now says each account answered; each test is in the sync history.
    expect(page.locator("#result_list td.field-health")).to_have_text(["OK"] * len(accounts))
    assert all(account.last_ok_at for account in ProviderAccount.objects.all())
    tested = SyncAttempt.objects.filter(
        operation=SyncAttempt.Operation.TEST, outcome=SyncAttempt.Outcome.SUCCESS
    )
    assert set(tested.values_list("account", flat=True)) == {account.pk for account in accounts}


@pytest.mark.worker
def test_a_provider_admin_changes_the_status_of_a_whole_filter_and_retries_the_failed_ones(
    page: Page, live_server, worker, sandbox, account_factory, provider_admin, screenshot_dir
):
    # No rate limit: at the default 5 requests/s the 145 creates below would take half a minute.
    kapture = account_factory("kapture", rate_limit=0)
    keliweb = account_factory("keliweb")
    waiting = seed(kapture, 145)
    # In step with the provider already (a push nudge sends every due row of its account, so
    # these must not be pending for "never re-sent" below to mean anything).
    already = seed(
        kapture,
        5,
        start=145,
        status=Status.IN_PROGRESS,
        sync_state=SyncState.SYNCED,
        synced_revision=1,
        remote_id="77",
    )
    elsewhere = seed(keliweb, 4, start=150, sync_state=SyncState.SYNCED, remote_id="88")
    # The first two creates the change sends are lost on the way back: applied, never answered.
    sandbox.faults(script=["lost", "lost"])

    # Every ticket of the account: two pages of them, all selected, one job.
    admin_sign_in(page, live_server.url)
    open_tickets(page)
    filter_by(page, kapture.name)
    expect(page.locator("#result_list tbody tr")).to_have_count(100)
    page.locator("#action-toggle").check()
    expect(page.locator(".actions .action-counter")).to_have_text("100 of 100 selected")
    page.get_by_role("button", name="Select all 150 tickets").click()
    expect(page.locator(".actions .all")).to_have_text("All 150 selected")
    run_action(page, "Change status (choose it on the right)", Status="In progress")

    change = job_from(page)
    open_job(page, change)
    expect(page.locator("#job-counts")).to_have_text(
        "Done — 150 of 150 processed: 145 succeeded, 0 failed, 5 skipped."
    )
    assert results(page) == [
        ["Skipped", "Already set", "5"],
        ["Succeeded", "Changed and queued for sync", "145"],
    ]
    expect(page.get_by_role("button", name=re.compile("^Retry"))).to_have_count(0)  # nothing failed
    change.refresh_from_db()
    assert change.selection == {"query": f"account__id__exact={kapture.pk}"}  # the filter, not the page
    assert (change.total, change.processed) == (150, 150)
    assert set(Ticket.objects.filter(account=kapture).values_list("status", flat=True)) == {
        Status.IN_PROGRESS
    }
    assert set(Ticket.objects.filter(account=keliweb).values_list("status", flat=True)) == {Status.NEW}

    # The worker sends the changed tickets; the two lost creates are held for a person.
    changed = Ticket.objects.filter(pk__in=[t.pk for t in waiting])
    wait_for(
        lambda: not changed.filter(sync_state__in=[SyncState.PENDING, SyncState.SENDING]).exists(),
        timeout=60,
        message="the changed tickets were not sent",
    )
    assert changed.filter(sync_state=SyncState.SYNCED).count() == 143
    unknown = sorted(changed.filter(sync_state=SyncState.NEEDS_ATTENTION).values_list("pk", flat=True))
    assert len(unknown) == 2
    assert len(sandbox.state("kapture")["tickets"]) == 145  # lost answers, not lost creates

    # "Sync now" on those: the job fails them and says why; the failed ones can be retried.
    open_tickets(page)
    filter_by(page, "Needs attention")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    page.locator("#action-toggle").check()
    run_action(page, "Sync now")
    sync_now = job_from(page)
    open_job(page, sync_now)
    expect(page.locator("#job-counts")).to_have_text(
        "Done — 2 of 2 processed: 0 succeeded, 2 failed, 0 skipped."
    )
    assert results(page) == [["Failed", UNKNOWN_CREATE, "2"]]
    expect(page.locator("#job-results .outcome-failed a")).to_have_text(
        list(Ticket.objects.filter(pk__in=unknown).order_by("pk").values_list("reference", flat=True))
    )
    page.screenshot(path=screenshot_dir / "bulk-job.png", full_page=True)

    page.get_by_role("button", name="Retry the 2 failed tickets").click()
    expect(page).not_to_have_url(re.compile(rf"/bulk-jobs/{sync_now.pk}/$"))
    retry = job_from(page)
    open_job(page, retry)
    # Exactly the failed ones, again; an unknown create stays failed until a person checks it.
    expect(page.locator("#job-counts")).to_have_text(
        "Done — 2 of 2 processed: 0 succeeded, 2 failed, 0 skipped."
    )
    assert results(page) == [["Failed", UNKNOWN_CREATE, "2"]]
    assert (retry.action, retry.selection) == ("sync_now", {"ids": unknown})
    assert BulkJob.objects.filter(state=BulkJob.State.DONE).count() == 3
    # Untouched: the tickets already in progress (never re-sent) and the other account's.
    assert states(already) == {(Status.IN_PROGRESS, SyncState.SYNCED, 1)}
    assert states(elsewhere) == {(Status.NEW, SyncState.SYNCED, 1)}


def test_enter_in_an_account_field_saves_the_account_and_neither_pauses_nor_tests_it(
    page: Page, live_server, account_factory, provider_admin
):
    account = account_factory("kapture", rate_limit=5)
    admin_sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/providers/provideraccount/{account.pk}/change/")
    page.get_by_label("Rate limit").fill("7")
    page.get_by_label("Rate limit").press("Enter")

    expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    expect(page.get_by_label("Rate limit")).to_have_value("7.0")  # back on the page, saved
    account.refresh_from_db()
    assert (float(account.rate_limit), account.paused_until, account.last_ok_at) == (7.0, None, None)
