from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.utils.html import format_html

from tickets import services
from tickets.forms import TicketForm
from tickets.models import SyncAttempt, SyncState, Ticket

BADGE_COLOURS = {
    SyncState.PENDING: "#777",
    SyncState.SENDING: "#1565c0",
    SyncState.SYNCED: "#2e7d32",
    SyncState.FAILED: "#c62828",
    SyncState.NEEDS_ATTENTION: "#ef6c00",
    SyncState.CANCELLED: "#555",
}


class SyncAttemptInline(admin.TabularInline):
    model = SyncAttempt
    fields = ("started_at", "operation", "outcome", "http_status", "duration_ms", "error", "request_url")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-started_at", "-id")
    show_change_link = True


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    form = TicketForm
    list_display = ("reference", "title", "account", "status", "priority", "sync_badge",
                    "remote_link", "created_at")
    list_filter = ("sync_state", "account__kind", "account", "status", "priority", "created_at")
    search_fields = ("=reference", "title", "=remote_id", "=remote_number", "requester_email")
    list_select_related = ("account",)
    readonly_fields = (
        "reference", "sync_badge", "last_error", "remote_id", "remote_number", "remote_link",
        "remote_status", "revision", "synced_revision", "attempts", "next_attempt_at",
        "last_synced_at", "created_by", "created_at", "updated_at",
    )
    fieldsets = [
        (None, {"fields": ("reference", "account", "title", "description")}),
        ("Requester", {"fields": ("requester_email", "requester_name")}),
        ("Classification", {"fields": ("status", "priority", "impact", "due_at", "tags")}),
        ("Provider fields", {"fields": ("extra",)}),
        ("Sync", {"fields": (
            "sync_badge", "last_error", "remote_id", "remote_number", "remote_link",
            "remote_status", "revision", "synced_revision", "attempts", "next_attempt_at",
            "last_synced_at", "created_by", "created_at", "updated_at",
        )}),
    ]
    inlines = [SyncAttemptInline]
    actions = ["retry_sync"]
    date_hierarchy = "created_at"

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)  # tickets are cancelled, never bulk-deleted
        return actions

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ("account", *self.readonly_fields)  # a ticket never moves to another account
        return self.readonly_fields

    @admin.display(description="Sync", ordering="sync_state")
    def sync_badge(self, obj):
        colour = BADGE_COLOURS.get(obj.sync_state, "#777")
        return format_html(
            '<span style="background:{};color:#fff;padding:1px 6px;border-radius:8px">{}</span>',
            colour, obj.get_sync_state_display(),
        )

    @admin.display(description="Remote", ordering="remote_number")
    def remote_link(self, obj):
        label = obj.remote_number or obj.remote_id
        if obj.remote_url and label:
            return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', obj.remote_url, label)
        return label or "—"

    def save_model(self, request, obj, form, change):
        if change:
            changes = {f: form.cleaned_data[f] for f in form.changed_data if f in services.SYNCED_FIELDS}
            ticket = services.update_ticket(ticket=Ticket.objects.get(pk=obj.pk), changes=changes)
        else:
            data = {f: form.cleaned_data[f] for f in services.SYNCED_FIELDS}
            ticket = services.create_ticket(
                account=form.cleaned_data["account"], created_by=request.user, **data
            )
        obj.pk, obj.reference = ticket.pk, ticket.reference

    @admin.action(description="Retry sync of selected tickets")
    def retry_sync(self, request, queryset):
        done, refused = 0, 0
        for ticket in queryset[:500]:
            try:
                services.retry_sync(ticket=ticket)
                done += 1
            except services.TicketActionError:
                refused += 1
        self.message_user(request, f"{done} ticket(s) queued again; {refused} had nothing to retry.",
                          messages.SUCCESS if done else messages.WARNING)


@admin.register(SyncAttempt)
class SyncAttemptAdmin(admin.ModelAdmin):
    list_display = ("started_at", "ticket", "account", "operation", "outcome", "http_status", "duration_ms")
    list_filter = ("operation", "outcome", "account")
    list_select_related = ("ticket", "account")
    search_fields = ("=ticket__reference",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
