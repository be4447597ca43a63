"""The staff UI: list, create, detail, edit and the ticket actions.

Views check permissions and visibility, bind forms and call tickets/services.py; what a
ticket does lives there. Tickets an agent may not see (tickets.access) answer 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from providers.base import FETCH
from providers.models import ProviderAccount
from tickets import services
from tickets.access import usable_accounts, visible_tickets
from tickets.lookup import lookup_guide
from tickets.models import Reply, Ticket
from tickets.paging import EstimatedCountPaginator
from tickets.ui import BUSY_STATES, sync_summary, ticket_actions, timeline
from tickets.ui_forms import (
    LinkRemoteForm,
    ReplyForm,
    StatusForm,
    TicketCreateForm,
    TicketFieldsForm,
    TicketFilterForm,
    provider_form_for,
    provider_values,
)

PAGE_SIZE = 25
SWITCH_ACCOUNT = "switch_account"


def agent_view(permission: str):
    """Sign-in first (a redirect), then the permission (403 for a signed-in agent without it)."""

    def decorate(view):
        return login_required(permission_required(permission, raise_exception=True)(view))

    return decorate


def ticket_for(request: HttpRequest, pk: int) -> Ticket:
    return get_object_or_404(visible_tickets(request.user), pk=pk)


def parse_pk(value: Any) -> int | None:
    """A primary key from a query or form value, or None: ASCII digits that fit a 64-bit
    column ("²".isdigit() is True, and 30 digits overflow the database driver)."""
    text = str(value or "")
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


# --- list --------------------------------------------------------------------------------
@require_GET
@agent_view("tickets.view_ticket")
def ticket_list(request: HttpRequest) -> HttpResponse:
    filters = TicketFilterForm(request.GET or None, user=request.user)
    tickets = filters.filter(visible_tickets(request.user), request.user)
    page = EstimatedCountPaginator(tickets, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "tickets/ticket_list.html",
        {
            "filters": filters,
            "page": page,
            "query": query.urlencode(),
            "filtered": any(v for k, v in request.GET.items() if k != "page"),
            "can_add": request.user.has_perm("tickets.add_ticket"),
        },
    )


@require_GET
@agent_view("tickets.view_ticket")
def sync_states(request: HttpRequest) -> JsonResponse:
    """The sync state of the tickets named by ?id= (the pages poll this while syncing)."""
    ids = [pk for pk in map(parse_pk, request.GET.getlist("id")[:100]) if pk is not None]
    tickets = visible_tickets(request.user).filter(pk__in=ids)
    busy_replies = Reply.objects.filter(ticket__in=tickets, sync_state__in=BUSY_STATES)
    replies_busy = set(busy_replies.values_list("ticket_id", flat=True))
    return JsonResponse(
        {"tickets": [sync_summary(ticket, replies_busy=ticket.pk in replies_busy) for ticket in tickets]}
    )


# --- create ------------------------------------------------------------------------------
def chosen_account(accounts: QuerySet[ProviderAccount], value: Any) -> ProviderAccount | None:
    pk = parse_pk(value)
    if pk is None:
        return accounts.first() if accounts.count() == 1 else None
    return accounts.filter(pk=pk).first()


def typed_values(form) -> dict[str, Any]:
    """What the agent typed into a bound form, as initial values for a fresh one (JSON fields
    parsed, so the fresh form does not encode the typed text a second time)."""
    return {field.name: field.field.bound_data(field.data, None) for field in form}


@agent_view("tickets.add_ticket")
def ticket_create(request: HttpRequest) -> HttpResponse:
    user = request.user
    accounts = usable_accounts(user)
    data = request.POST if request.method == "POST" else None
    account = chosen_account(accounts, (data or request.GET).get("account"))
    if data is not None and SWITCH_ACCOUNT in data:
        # The account changed: show its fields, keep everything typed, and judge nothing yet.
        form = TicketCreateForm(initial=typed_values(TicketCreateForm(data, user=user)), user=user)
        provider_form = provider_form_for(account)
        if provider_form is not None and any(key.startswith(f"{account.kind}-") for key in data):
            typed = typed_values(provider_form_for(account, data=data))
            provider_form = provider_form_for(account, stored=typed)
    elif data is not None:
        form = TicketCreateForm(data, request.FILES, user=user)
        form.add_attachments_field(account)
        provider_form = provider_form_for(account, data=data)
        valid = [form.is_valid(), provider_form is None or provider_form.is_valid()]
        if all(valid):
            values = {name: form.cleaned_data[name] for name in TicketFieldsForm.Meta.fields}
            ticket = services.create_ticket(
                account=form.cleaned_data["account"],
                **values,
                extra=provider_values(provider_form),
                created_by=user,
                files=form.cleaned_data.get("attachments") or [],
            )
            messages.success(
                request,
                f"{ticket.reference} saved; it is being sent to {ticket.account.provider_class.label}.",
            )
            return redirect("tickets:detail", pk=ticket.pk)
    else:
        form = TicketCreateForm(initial={"account": account}, user=user)
        provider_form = provider_form_for(account)
    if "attachments" not in form.fields:
        form.add_attachments_field(account)
    return render(
        request,
        "tickets/ticket_create.html",
        {
            "form": form,
            "provider_form": provider_form,
            "account": account,
            "provider_label": account.provider_class.label if account else "",
            "has_accounts": accounts.exists(),
            "switch_name": SWITCH_ACCOUNT,
        },
    )


# --- detail ------------------------------------------------------------------------------
def extra_rows(ticket: Ticket) -> list[tuple[str, Any]]:
    """The provider's own fields of the ticket, labelled as the provider's form labels them."""
    form_class = ticket.account.provider_class.extra_form
    fields = form_class.base_fields if form_class else {}
    rows = []
    for key, value in (ticket.extra or {}).items():
        field = fields.get(key)
        label = field.label if field and field.label else key.replace("_", " ").capitalize()
        rows.append((label, value))
    return rows


@require_GET
@agent_view("tickets.view_ticket")
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render_detail(request, ticket_for(request, pk))


def render_detail(
    request: HttpRequest, ticket: Ticket, *, link_form: LinkRemoteForm | None = None, status: int = 200
) -> HttpResponse:
    replies = list(ticket.replies.select_related("author"))
    return render(
        request,
        "tickets/ticket_detail.html",
        status=status,
        context={
            "ticket": ticket,
            "replies_busy": any(reply.sync_state in BUSY_STATES for reply in replies),
            "provider_label": ticket.account.provider_class.label,
            "summary": sync_summary(ticket),
            "extra_rows": extra_rows(ticket),
            "timeline": timeline(ticket),
            "replies": replies,
            "actions": ticket_actions(ticket, request.user),
            "status_form": StatusForm(initial={"status": ticket.status}),
            "reply_form": ReplyForm(),
            "link_form": link_form or LinkRemoteForm(),
            "lookup": lookup_guide(ticket),
            "conversation_read": ticket.account.provider_class.reads_conversation,
            "busy": ticket.sync_state in BUSY_STATES,
        },
    )


# --- edit and actions --------------------------------------------------------------------
def refuse_unavailable(request: HttpRequest, ticket: Ticket, action: str) -> HttpResponse | None:
    """A redirect with the reason when `action` is not available on `ticket` now."""
    allowed = ticket_actions(ticket, request.user).get(action)
    if allowed is not None and allowed.available:
        return None
    messages.error(request, allowed.reason if allowed else "That action does not apply to this ticket now.")
    return redirect("tickets:detail", pk=ticket.pk)


@agent_view("tickets.change_ticket")
def ticket_edit(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = ticket_for(request, pk)
    refused = refuse_unavailable(request, ticket, "edit")
    if refused:
        return refused
    data = request.POST if request.method == "POST" else None
    # The form edits a copy: ModelForm validation writes into its instance, and the service
    # compares the stored ticket with the changes.
    form = TicketFieldsForm(data, instance=Ticket.objects.get(pk=ticket.pk), account=ticket.account)
    provider_form = provider_form_for(ticket.account, data=data, stored=ticket.extra or {})
    if data is not None and all([form.is_valid(), provider_form is None or provider_form.is_valid()]):
        changes = {name: form.cleaned_data[name] for name in TicketFieldsForm.Meta.fields}
        if provider_form is not None:
            kept = {k: v for k, v in (ticket.extra or {}).items() if k not in provider_form.fields}
            changes["extra"] = {**kept, **provider_values(provider_form)}
        try:
            services.update_ticket(ticket=ticket, changes=changes)
        except services.TicketActionError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{ticket.reference} saved.")
            return redirect("tickets:detail", pk=ticket.pk)
    return render(
        request,
        "tickets/ticket_edit.html",
        {
            "ticket": ticket,
            "form": form,
            "provider_form": provider_form,
            "provider_label": ticket.account.provider_class.label,
        },
    )


def run_action(request: HttpRequest, ticket: Ticket, call, success: str) -> HttpResponse:
    try:
        call()
    except services.TicketActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success)
    return redirect("tickets:detail", pk=ticket.pk)


@require_POST
@agent_view("tickets.change_ticket")
def ticket_status(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = ticket_for(request, pk)
    form = StatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed statuses.")
        return redirect("tickets:detail", pk=ticket.pk)
    refused = refuse_unavailable(request, ticket, "status")
    if refused:
        return refused
    status = form.cleaned_data["status"]
    label = dict(form.fields["status"].choices)[status]
    return run_action(
        request,
        ticket,
        lambda: services.update_ticket(ticket=ticket, changes={"status": status}),
        f"{ticket.reference} is now {label}.",
    )


@require_POST
@agent_view("tickets.change_ticket")
def ticket_retry(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = ticket_for(request, pk)
    return run_action(
        request, ticket, lambda: services.retry_sync(ticket=ticket), f"{ticket.reference} will be sent again."
    )


@require_POST
@agent_view("tickets.change_ticket")
def ticket_reply(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = ticket_for(request, pk)
    refused = refuse_unavailable(request, ticket, "reply")
    if refused:
        return refused
    form = ReplyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Write the reply first.")
        return redirect("tickets:detail", pk=ticket.pk)
    return run_action(
        request,
        ticket,
        lambda: services.add_reply(ticket=ticket, body=form.cleaned_data["body"], author=request.user),
        "Reply saved; it is being sent.",
    )


@require_POST
@agent_view("tickets.change_ticket")
def ticket_link(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = ticket_for(request, pk)
    refused = refuse_unavailable(request, ticket, "link")
    if refused:
        return refused
    form = LinkRemoteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the remote id to link.")
        return redirect("tickets:detail", pk=ticket.pk)
    remote_id = form.cleaned_data["remote_id"]
    provider_class = ticket.account.provider_class
    try:
        services.link_remote_id(ticket=ticket, **form.cleaned_data)
    except services.RemoteIdRejected as exc:
        # Shown on the field, with what was typed kept: the agent corrects the id.
        form.add_error("remote_id", str(exc))
        return render_detail(request, ticket_for(request, pk), link_form=form, status=422)
    except services.TicketActionError as exc:
        messages.error(request, str(exc))
        return redirect("tickets:detail", pk=ticket.pk)
    if provider_class.supports(FETCH):
        messages.success(
            request, f"{ticket.reference} is linked to {remote_id}, found in {provider_class.label}."
        )
    else:
        messages.warning(
            request,
            f"{ticket.reference} is linked to {remote_id}. {provider_class.label} "
            "cannot be read, so the console could not check that this id exists "
            "there: make sure it is the right one.",
        )
    return redirect("tickets:detail", pk=ticket.pk)


@require_POST
@agent_view("tickets.change_ticket")
def ticket_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = ticket_for(request, pk)
    refused = refuse_unavailable(request, ticket, "cancel")
    if refused:
        return refused
    return run_action(
        request, ticket, lambda: services.cancel_sync(ticket=ticket), f"Sync of {ticket.reference} cancelled."
    )
