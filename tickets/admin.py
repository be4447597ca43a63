import copy
import json
import logging

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.views.main import ORDER_VAR
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.forms.utils import pretty_name
from django.http import FileResponse, Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from console.crypto import CredentialsUnreadable
from providers.base import CREATE, FETCH, REPLY, UPDATE
from providers.errors import ProviderConfigurationError, ProviderValidationError
from providers.models import ProviderAccount
from tickets import access, account_admin, bulk, services, ui  # noqa: F401 - account_admin registers ProviderAccount
from tickets.forms import TicketForm
from tickets.models import BulkJob, Priority, Status, SyncAttempt, SyncState, Ticket
from tickets.paging import EstimatedCountPaginator
from tickets.search import admin_search
from tickets.ui_forms import TagsField

log = logging.getLogger(__name__)
BADGE_COLOURS = {
    SyncState.PENDING: "#777",
    SyncState.SENDING: "#1565c0",
    SyncState.SYNCED: "#2e7d32",
    SyncState.FAILED: "#c62828",
    SyncState.NEEDS_ATTENTION: "#ef6c00",
    SyncState.CANCELLED: "#555",
    SyncState.LOCAL_ONLY: "#6a1b9a",
}
#: Sync attempts shown on a ticket's page; the full history is one link away.
LATEST_ATTEMPTS = 20
#: Provider fields appear in the admin form as "extra__<name>".
EXTRA_PREFIX = "extra__"
OPERATION_WORDS = {
    CREATE: "create tickets",
    UPDATE: "update tickets",
    FETCH: "read tickets back",
    REPLY: "take replies",
}


class LatestAttemptsFormSet(forms.BaseInlineFormSet):
    def get_queryset(self):
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset()[:LATEST_ATTEMPTS]
        return self._latest


class SyncAttemptInline(admin.TabularInline):
    model = SyncAttempt
    formset = LatestAttemptsFormSet
    verbose_name_plural = f"Sync history (latest {LATEST_ATTEMPTS})"
    classes = ("collapse",)  # folded: twenty rows of calls make the page very long
    fields = ("started_at", "operation", "outcome", "http_status", "duration_ms", "error", "request_url")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-started_at", "-id")
    show_change_link = True


class VisibleAccountFilter(admin.RelatedFieldListFilter):
    """The account filter offers only the accounts the user may see (tickets/access.py): a
    restricted account's name is not shown to those outside its groups."""

    def field_choices(self, field, request, model_admin):
        return [
            (account.pk, str(account))
            for account in access.visible_accounts(request.user).order_by("name").only("pk", "name")
        ]


class TicketActionForm(helpers.ActionForm):
    """The changelist's action bar, with the values the change actions need."""

    new_status = forms.ChoiceField(required=False, label="Status", choices=[("", "—"), *Status.choices])
    new_priority = forms.ChoiceField(required=False, label="Priority", choices=[("", "—"), *Priority.choices])


class TicketAdminForm(TicketForm):
    """The shared ticket form, with the provider's own fields as real form fields.

    The admin builds a subclass per provider (`for_provider`) whose declared fields are
    copies of the provider's extra_form fields, named extra__<name>; the shared form then
    validates them together, and its errors land on those fields.
    """

    provider_field_names: tuple[str, ...] = ()
    # Typed as text, not as raw JSON ("[]" and "null" on an empty ticket).
    tags = TagsField(required=False, help_text="Comma-separated, e.g. vpn, outage.")
    extra = forms.JSONField(
        required=False,
        label="Provider fields (JSON)",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='The provider\'s own fields as a JSON object, e.g. {"queue": "L2"}; empty for none.',
    )

    @classmethod
    def for_provider(cls, provider_class) -> type["TicketAdminForm"]:
        fields = {}
        for name, field in provider_class.extra_form.base_fields.items():
            fields[f"{EXTRA_PREFIX}{name}"] = copy.deepcopy(field)
            # Labelled as in the provider's form, not after the prefixed name.
            fields[f"{EXTRA_PREFIX}{name}"].label = field.label or pretty_name(name)
        attrs = {**fields, "provider_field_names": tuple(provider_class.extra_form.base_fields)}
        return type(f"{provider_class.__name__}TicketAdminForm", (cls,), attrs)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.provider_field_names:
            self.fields["extra"].widget = forms.HiddenInput()
            self.fields["extra"].required = False
            stored = (self.instance.extra if self.instance.pk else None) or {}
            for name in self.provider_field_names:
                if name in stored:
                    self.initial.setdefault(f"{EXTRA_PREFIX}{name}", stored[name])

    def clean_extra(self):
        return self.cleaned_data.get("extra") or {}

    def clean(self):
        if not self.provider_field_names:
            return super().clean()
        self.cleaned_data["extra"] = {
            name: self.cleaned_data.get(f"{EXTRA_PREFIX}{name}")
            for name in self.provider_field_names
            if f"{EXTRA_PREFIX}{name}" in self.cleaned_data
        }
        cleaned = super().clean()
        # The shared form reports provider-form errors on "extra" as "<name>: <message>";
        # put each on its own field.
        for error in self._errors.pop("extra", []):
            name, _, message = error.partition(": ")
            if f"{EXTRA_PREFIX}{name}" in self.fields and message:
                self.add_error(f"{EXTRA_PREFIX}{name}", message)
            else:
                self.add_error(None, error)
        return cleaned


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    form = TicketAdminForm
    action_form = TicketActionForm
    list_display = (
        "reference",
        "title",
        "account",
        "provider_kind",
        "status",
        "priority",
        "sync_badge",
        "remote_link",
        "created_at",
    )
    list_filter = (
        ("account", VisibleAccountFilter),
        "account__kind",
        "sync_state",
        "status",
        "priority",
        "created_at",
    )
    # What the search box compares; get_search_results does the searching (tickets/search.py).
    search_fields = (
        "=reference",
        "=remote_id",
        "=remote_number",
        "title",
        "requester_email",
        "requester_name",
    )
    list_select_related = ("account",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count query per filter choice: not at 100k rows
    paginator = EstimatedCountPaginator
    sync_fields = (
        "sync_badge",
        "last_error",
        "remote_id",
        "remote_number",
        "remote_link",
        "remote_status_label",
        "revision",
        "synced_revision",
        "attempts",
        "next_attempt_at",
        "last_synced_at",
        "created_by",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("reference", *sync_fields)
    inlines = [SyncAttemptInline]
    actions = [
        "sync_now",
        "retry_failed",
        "pull_now",
        "change_status",
        "change_priority",
        "cancel",
        "export_csv",
    ]
    change_form_template = "admin/tickets/ticket/change_form.html"

    # --- what the user may see (tickets/access.py) -----------------------------------------
    def get_queryset(self, request):
        """Changelist, search, change/history/delete pages and actions all start here."""
        return access.visible_tickets(request.user, super().get_queryset(request))

    def get_search_results(self, request, queryset, search_term):
        """The staff list's search word by word: exact matches (reference, remote id, remote
        number) first unless the user sorted by a column, a whole e-mail address compared
        exactly, SQLite's FTS5 index where there is one. `queryset` is already narrowed to what
        the user may see and sorted; no joins, so no duplicates."""
        if not search_term.strip():
            return queryset, False
        return admin_search(queryset, search_term, keep_order=bool(request.GET.get(ORDER_VAR))), False

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "account":
            kwargs["queryset"] = access.usable_accounts(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # --- the form -----------------------------------------------------------------------
    def account_for(self, request, obj=None) -> ProviderAccount | None:
        """The ticket's account, or on the add page the one chosen (?account= or the POST)."""
        if obj is not None:
            return obj.account
        chosen = request.POST.get("account") or request.GET.get("account")
        if not chosen or not str(chosen).isdigit():
            return None
        return access.usable_accounts(request.user).filter(pk=chosen).first()

    def provider_class_for(self, request, obj=None):
        account = self.account_for(request, obj)
        return account.provider_class if account is not None else None

    def get_form(self, request, obj=None, change=False, **kwargs):
        provider_class = self.provider_class_for(request, obj)
        if provider_class is not None and provider_class.extra_form is not None:
            kwargs["form"] = self.form.for_provider(provider_class)
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        provider_class = self.provider_class_for(request, obj)
        if provider_class is not None and provider_class.extra_form is not None:
            names = provider_class.extra_form.base_fields
            provider_fields = ("extra", *(f"{EXTRA_PREFIX}{name}" for name in names))
            provider_title = f"{provider_class.label} fields"
        else:
            provider_fields, provider_title = ("extra",), "Provider fields"
        fieldsets = [
            (None, {"fields": ("reference", "account", "title", "description")}),
            ("Requester", {"fields": ("requester_email", "requester_name")}),
            ("Classification", {"fields": ("status", "priority", "impact", "due_at", "tags")}),
            (provider_title, {"fields": provider_fields}),
        ]
        if obj is not None:
            fieldsets.insert(1, ("Sync", {"fields": self.sync_fields}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ("account", *self.readonly_fields)  # a ticket never moves to another account
        return self.readonly_fields

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(self.provider_context(request, obj))
        return super().render_change_form(
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )

    def provider_context(self, request, obj=None) -> dict:
        """What the provider can do for this ticket, and the request a sync would send now."""
        provider_class = self.provider_class_for(request, obj)
        if provider_class is None:
            return {"provider_chosen": False}
        capabilities = [
            {
                "operation": op,
                "words": words,
                "supported": provider_class.supports(op),
                "reason": "" if provider_class.supports(op) else provider_class.reason_unsupported(op),
            }
            for op, words in OPERATION_WORDS.items()
        ]
        context = {
            "provider_chosen": True,
            "provider_label": provider_class.label,
            "capabilities": capabilities,
        }
        if obj is not None:
            context["update_refused"] = (
                provider_class.reason_unsupported(UPDATE)
                if obj.remote_id and not provider_class.supports(UPDATE)
                else ""
            )
            context["attempts_url"] = reverse("admin:tickets_syncattempt_changelist") + f"?q={obj.reference}"
            try:
                preview = obj.account.get_provider().preview(obj)
                context["preview"] = {**preview, "headers": json.dumps(preview["headers"], indent=2)}
            except (ProviderConfigurationError, ProviderValidationError, CredentialsUnreadable) as exc:
                context["preview_error"] = getattr(exc, "message", None) or str(exc)
            except Exception:  # noqa: BLE001 - a broken builder must not take the page down
                log.exception("Preview of ticket %s failed", obj.pk)
                context["preview_error"] = "building the request failed; the server log has the details."
        return context

    def save_model(self, request, obj, form, change):
        if change:
            # update_ticket keeps only what differs from the stored ticket.
            changes = {f: form.cleaned_data[f] for f in services.SYNCED_FIELDS if f in form.cleaned_data}
            ticket = services.update_ticket(ticket=Ticket.objects.get(pk=obj.pk), changes=changes)
        else:
            data = {f: form.cleaned_data[f] for f in services.SYNCED_FIELDS}
            ticket = services.create_ticket(
                account=form.cleaned_data["account"], created_by=request.user, **data
            )
        obj.pk, obj.reference = ticket.pk, ticket.reference

    # --- the changelist ------------------------------------------------------------------
    def has_delete_permission(self, request, obj=None):
        return False  # tickets are cancelled (they may exist remotely), never deleted

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)  # tickets are cancelled, never bulk-deleted
        return actions

    @admin.display(description="Provider", ordering="account__kind")
    def provider_kind(self, obj):
        return obj.account.get_kind_display()

    @admin.display(description="Sync", ordering="sync_state")
    def sync_badge(self, obj):
        colour = BADGE_COLOURS.get(obj.sync_state, "#777")
        return format_html(
            '<span style="background:{};color:#fff;padding:1px 6px;border-radius:8px">{}</span>',
            colour,
            obj.get_sync_state_display(),
        )

    @admin.display(description="Remote status")
    def remote_status_label(self, obj):
        """In the console's words by the account's status map: "Open (OP)", not "OP"."""
        return ui.remote_status_label(obj) or "—"

    @admin.display(description="Remote", ordering="remote_number")
    def remote_link(self, obj):
        label = obj.remote_number or obj.remote_id
        if obj.remote_url and label:
            return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', obj.remote_url, label)
        return label or "—"

    # --- bulk actions: each records a BulkJob and goes to its page ------------------------
    def start_bulk_job(self, request, queryset, action: str, params: dict | None = None):
        """Record the selection without reading it: "select all" keeps the changelist's query
        string (filters and search), otherwise the ticked ids that the user may see (`queryset`
        is the changelist's, narrowed to them). One INSERT, whatever the size. The job checks
        the starter's access again as it runs (tickets/access.py bulk_job_tickets)."""
        if request.POST.get("select_across") == "1":
            query = request.GET.copy()
            for paging in ("p", "all"):  # which page was shown is not part of the selection
                query.pop(paging, None)
            selection = {"query": query.urlencode()}
        else:
            selection = {"ids": sorted(queryset.values_list("pk", flat=True))}
        job = bulk.start_job(action=action, params=params or {}, selection=selection, user=request.user)
        return HttpResponseRedirect(reverse("admin:tickets_ticket_bulk_job", args=[job.pk]))

    def chosen_value(self, request, name: str, choices) -> str | None:
        value = request.POST.get(name, "")
        if value not in dict(choices):
            self.message_user(request, "Choose the new value next to the action first.", messages.ERROR)
            return None
        return value

    @admin.action(description="Sync now", permissions=["change"])
    def sync_now(self, request, queryset):
        return self.start_bulk_job(request, queryset, "sync_now")

    @admin.action(description="Pull remote state now", permissions=["change"])
    def pull_now(self, request, queryset):
        return self.start_bulk_job(request, queryset, "pull_now")

    @admin.action(description="Retry failed sync", permissions=["change"])
    def retry_failed(self, request, queryset):
        return self.start_bulk_job(request, queryset, "retry_failed")

    @admin.action(description="Change status (choose it on the right)", permissions=["change"])
    def change_status(self, request, queryset):
        status = self.chosen_value(request, "new_status", Status.choices)
        if status is None:
            return None
        return self.start_bulk_job(request, queryset, "change_status", {"status": status})

    @admin.action(description="Change priority (choose it on the right)", permissions=["change"])
    def change_priority(self, request, queryset):
        priority = self.chosen_value(request, "new_priority", Priority.choices)
        if priority is None:
            return None
        return self.start_bulk_job(request, queryset, "change_priority", {"priority": priority})

    @admin.action(description="Cancel tickets", permissions=["change"])
    def cancel(self, request, queryset):
        return self.start_bulk_job(request, queryset, "cancel")

    @admin.action(description="Export as CSV", permissions=["change"])
    def export_csv(self, request, queryset):
        return self.start_bulk_job(request, queryset, "export_csv")

    # --- the job page ------------------------------------------------------------------------
    def get_urls(self):
        own = [
            path(
                "bulk-jobs/<int:job_id>/",
                self.admin_site.admin_view(self.bulk_job_view),
                name="tickets_ticket_bulk_job",
            ),
            path(
                "bulk-jobs/<int:job_id>/progress.json",
                self.admin_site.admin_view(self.bulk_job_progress),
                name="tickets_ticket_bulk_job_progress",
            ),
            path(
                "bulk-jobs/<int:job_id>/retry-failed/",
                self.admin_site.admin_view(require_POST(self.bulk_job_retry_failed)),
                name="tickets_ticket_bulk_job_retry",
            ),
            path(
                "bulk-jobs/<int:job_id>/download/",
                self.admin_site.admin_view(self.bulk_job_download),
                name="tickets_ticket_bulk_job_download",
            ),
        ]
        return own + super().get_urls()

    def job_for(self, request, job_id: int) -> BulkJob:
        """Another user's job answers 404, as if it did not exist (tickets/access.py)."""
        if not access.can_run_bulk_jobs(request.user):
            raise PermissionDenied
        return get_object_or_404(access.visible_bulk_jobs(request.user), pk=job_id)

    def bulk_job_view(self, request, job_id: int):
        job = self.job_for(request, job_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Bulk job #{job.pk}: {bulk.progress(job)['action']}",
            "opts": self.opts,
            "job": job,
            "progress": bulk.progress(job),
            "results": bulk.grouped_results(job),
            "progress_url": reverse("admin:tickets_ticket_bulk_job_progress", args=[job.pk]),
        }
        return TemplateResponse(request, "admin/tickets/ticket/bulk_job.html", context)

    def bulk_job_progress(self, request, job_id: int):
        job = self.job_for(request, job_id)
        results_html = TemplateResponse(
            request,
            "admin/tickets/ticket/bulk_job_results.html",
            {"job": job, "results": bulk.grouped_results(job), "progress": bulk.progress(job)},
        ).rendered_content
        return JsonResponse({**bulk.progress(job), "results_html": results_html})

    def bulk_job_retry_failed(self, request, job_id: int):
        job = self.job_for(request, job_id)
        try:
            new_job = bulk.retry_failed_of(job=job, user=request.user)
        except services.TicketActionError as exc:
            self.message_user(request, str(exc), messages.WARNING)
            return HttpResponseRedirect(reverse("admin:tickets_ticket_bulk_job", args=[job.pk]))
        return HttpResponseRedirect(reverse("admin:tickets_ticket_bulk_job", args=[new_job.pk]))

    def bulk_job_download(self, request, job_id: int):
        job = self.job_for(request, job_id)
        name = job.results.get("file")
        if not name or not default_storage.exists(name):
            raise Http404("This job has no export file.")
        return FileResponse(
            default_storage.open(name, "rb"),
            as_attachment=True,
            filename=f"tickets-job-{job.pk}.csv",
            content_type="text/csv",
        )


@admin.register(SyncAttempt)
class SyncAttemptAdmin(admin.ModelAdmin):
    list_display = ("started_at", "ticket", "account", "operation", "outcome", "http_status", "duration_ms")
    list_filter = ("operation", "outcome", ("account", VisibleAccountFilter))
    list_select_related = ("ticket", "account")
    search_fields = ("=ticket__reference",)

    def get_queryset(self, request):
        return access.visible_sync_attempts(request.user, super().get_queryset(request))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(BulkJob)
class BulkJobAdmin(admin.ModelAdmin):
    """The list of bulk jobs; each opens its live page (for those who may change tickets)."""

    list_display = (
        "job_link",
        "state",
        "total",
        "processed",
        "succeeded",
        "kept_here",
        "failed",
        "skipped",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("state", "action")
    list_select_related = ("created_by",)
    show_full_result_count = False

    @admin.display(description="Job", ordering="pk")
    def job_link(self, obj):
        label = bulk.ACTIONS[obj.action].label if obj.action in bulk.ACTIONS else obj.action
        url = reverse("admin:tickets_ticket_bulk_job", args=[obj.pk])
        return format_html('<a href="{}">#{} {}</a>', url, obj.pk, label)

    def get_queryset(self, request):
        return access.visible_bulk_jobs(request.user, super().get_queryset(request))

    def has_module_permission(self, request):
        return access.can_run_bulk_jobs(request.user)

    def has_view_permission(self, request, obj=None):
        return access.can_run_bulk_jobs(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
