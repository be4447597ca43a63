"""Provider accounts in the admin: provider admins only (the manage_provider_accounts permission).

Lives in tickets/ (registered by tickets/admin.py) because its buttons reach the console's
services and access policy; the form and field parts it uses stay in providers/forms.py.

Credentials are write-only; defaults and maps are edited as tables; health shows the breaker's
state with pause/resume; every change is logged (credentials as "credentials" only). The
callback secret is never shown: only whether one is set, when, and a Rotate button.
"""

from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from providers import api_config_form, callback_secret
from providers.api_config_form import GENERIC
from providers.forms import (
    ProviderAccountForm,
    clear_field_name,
    credential_field_name,
    describe_changes,
    optional_credentials,
)
from providers.models import ProviderAccount
from providers.registry import PROVIDERS, get_provider_class
from tickets import try_it
from tickets.access import can_manage_accounts, can_try_requests
from tickets.services import (
    TicketActionError,
    pause_account,
    resume_account,
    rotate_callback_secret,
    test_connection,
)

# A pause this long is shown as "until resumed".
OPEN_ENDED_PAUSE = timedelta(days=365)
HISTORY_ON_PAGE = 5


def pause_state(account: ProviderAccount) -> str:
    """'Paused until …', 'Paused until resumed' or '' (running)."""
    now = timezone.now()
    if not account.paused_until or account.paused_until <= now:
        return ""
    if account.paused_until - now > OPEN_ENDED_PAUSE:
        return "Paused until resumed"
    return f"Paused until {formats.date_format(timezone.localtime(account.paused_until), 'DATETIME_FORMAT')}"


def when(moment) -> str:
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    form = ProviderAccountForm
    list_display = ("name", "kind", "base_url", "enabled", "health", "last_ok_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "base_url")
    readonly_fields = (
        "credentials_updated_at",
        "last_ok_at",
        "last_error",
        "last_error_at",
        "problem_since",
        "consecutive_failures",
        "test_connection_button",
        "pause_controls",
        "recent_changes",
        "callback_state",
        "try_it_link",
    )
    actions = ["test_connections", "rotate_callback_secrets"]
    change_form_template = "admin/providers/provideraccount/change_form.html"

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ("name", "kind", "base_url", "enabled")}),
        ]
        for kind in PROVIDERS:
            provider_class = get_provider_class(kind)
            fields = []
            for key in provider_class.credential_fields:
                fields.append(credential_field_name(kind, key))
                if key in optional_credentials(kind):
                    fields.append(clear_field_name(kind, key))
            fieldsets.append(
                (
                    f"{provider_class.label} credentials",
                    {
                        "fields": fields,
                        "classes": ("credentials", f"credentials-{kind}"),
                        "description": "Stored encrypted and never shown again. "
                        "Only the fields of the account's kind are used.",
                    },
                )
            )
        # The generic kind's configuration, one part per fieldset; shown for that kind only.
        kind_only = ("kind-only", f"kind-{GENERIC}")
        for section in api_config_form.SECTIONS:
            fields = [section.field]
            if section is api_config_form.GENERAL:
                fields.insert(0, "api_example")
            if section is api_config_form.SECTIONS[-1]:
                fields.append("try_it_link")
            fieldsets.append((section.title, {"fields": fields, "classes": kind_only}))
        fieldsets += [
            ("Defaults", {"fields": ("settings",)}),
            ("Inbound callback", {"fields": ("callback_state",)}),
            ("Status and priority maps", {"fields": ("status_map", "priority_map")}),
            ("Limits", {"fields": ("rate_limit", "rate_burst", "timeout", "paused_until")}),
            (
                "Health",
                {
                    "fields": (
                        "test_connection_button",
                        "pause_controls",
                        "credentials_updated_at",
                        "last_ok_at",
                        "last_error",
                        "last_error_at",
                        "problem_since",
                        "consecutive_failures",
                    )
                },
            ),
        ]
        if obj is not None:
            fieldsets.append(("Recent changes", {"fields": ("recent_changes",)}))
        return fieldsets

    # Every POST to these views carries the whole change form: typed credentials, and the
    # callback secret among the settings. None of it may reach a DEBUG page or an error report.
    @method_decorator(sensitive_post_parameters())
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    def has_module_permission(self, request):
        return can_manage_accounts(request.user)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission

    # --- read-only parts of the page ------------------------------------------------------
    @admin.display(description="Health")
    def health(self, obj):
        paused = pause_state(obj)
        if obj.consecutive_failures:
            return format_html(
                '<span style="color:#b00">{}{} failure(s): {}</span>',
                f"{paused}. " if paused else "",
                obj.consecutive_failures,
                obj.last_error[:80],
            )
        if paused:
            return paused
        return "OK" if obj.last_ok_at else "—"

    @admin.display(description="Connection")
    def test_connection_button(self, obj):
        if not obj or not obj.pk:
            return "Save the account first."
        # A POST (it records an attempt and the account's health), like Pause/Resume.
        url = reverse("admin:providers_provideraccount_test", args=[obj.pk])
        return format_html(
            '<button type="submit" class="button" formaction="{}">Test connection</button>', url
        )

    @admin.display(description="Try it")
    def try_it_link(self, obj):
        if not obj or not obj.pk or obj.kind != GENERIC:
            return "Save the account first: Try it sends the saved configuration."
        url = reverse("admin:providers_provideraccount_try", args=[obj.pk])
        return format_html(
            '<a class="button" href="{}">Try a request</a> Builds one request of the saved '
            "configuration and shows it, and what its answer would become.",
            url,
        )

    @admin.display(description="Sync")
    def pause_controls(self, obj):
        if not obj or not obj.pk:
            return "—"
        paused = pause_state(obj)
        # formaction posts the change form (with its CSRF token) to the pause/resume view.
        if paused:
            url = reverse("admin:providers_provideraccount_resume", args=[obj.pk])
            return format_html(
                '{} <button type="submit" class="button" formaction="{}">Resume</button>', paused, url
            )
        url = reverse("admin:providers_provideraccount_pause", args=[obj.pk])
        return format_html('Running <button type="submit" class="button" formaction="{}">Pause</button>', url)

    @admin.display(description="Callback secret")
    def callback_state(self, obj):
        if not obj or not obj.pk:
            return "A Knight account saved with callback_base_url in its defaults gets one."
        if not callback_secret.calls_back(obj):
            return f"{obj.provider_class.label} does not call back."
        # The secret, and so the callback URL, is never shown: only that one is set, and when.
        url = reverse("admin:providers_provideraccount_rotate_callback_secret", args=[obj.pk])
        button = format_html(
            ' <button type="submit" class="button" formaction="{}">Rotate callback secret</button>', url
        )
        if not obj.callback_secret_set_at:
            return format_html("Not set.{}", button)
        state = format_html("Set on {}.", when(obj.callback_secret_set_at))
        until = callback_secret.previous_until(obj, now=timezone.now())
        if until:
            state = format_html("{} The previous secret is accepted until {}.", state, when(until))
        if not (obj.settings or {}).get("callback_base_url"):
            state = format_html(
                "{} Tickets carry no callback address until callback_base_url is set in the defaults.", state
            )
        return format_html("{}{}", state, button)

    @admin.display(description="Changes")
    def recent_changes(self, obj):
        if not obj or not obj.pk:
            return "—"
        entries = (
            LogEntry.objects.filter(
                content_type=ContentType.objects.get_for_model(ProviderAccount), object_id=str(obj.pk)
            )
            .select_related("user")
            .order_by("-action_time")[:HISTORY_ON_PAGE]
        )
        rows = format_html_join(
            "",
            "<li>{} — {}: {}</li>",
            (
                (
                    formats.date_format(timezone.localtime(e.action_time), "DATETIME_FORMAT"),
                    e.user.get_username(),
                    e.get_change_message() or e.get_action_flag_display(),
                )
                for e in entries
            ),
        )
        history = reverse("admin:providers_provideraccount_history", args=[obj.pk])
        return format_html(
            '<ul style="margin:0">{}</ul><a href="{}">Full history</a>',
            rows or mark_safe("<li>No changes recorded.</li>"),
            history,
        )

    # --- the change log: field names, never credential values -------------------------------
    def construct_change_message(self, request, form, formsets, add=False):
        if add:
            return [{"added": {}}]
        labels = {name: str(field.label or name) for name, field in form.fields.items()}
        return describe_changes(form.changed_data, labels, credentials=form.credentials_changed)

    # --- actions ------------------------------------------------------------------------------
    def get_urls(self):
        def view(func, suffix):
            """An account button: a POST, by someone who may change accounts (403 otherwise)."""

            def guarded(request, pk):
                if not self.has_change_permission(request):
                    raise PermissionDenied
                return func(request, pk)

            name = suffix.replace("-connection", "").replace("-", "_")
            return path(
                f"<int:pk>/{suffix}/",
                self.admin_site.admin_view(require_POST(guarded)),
                name=f"providers_provideraccount_{name}",
            )

        return [
            path(
                "<int:pk>/try/",
                self.admin_site.admin_view(self.try_view),
                name="providers_provideraccount_try",
            ),
            view(self.test_view, "test-connection"),
            view(self.pause_view, "pause"),
            view(self.resume_view, "resume"),
            view(self.rotate_callback_secret_view, "rotate-callback-secret"),
            *super().get_urls(),
        ]

    @method_decorator(sensitive_post_parameters())
    def try_view(self, request, pk):
        """GET: the form; POST: the request built (and sent or parsed), shown on the same page."""
        if not can_try_requests(request.user):
            raise PermissionDenied
        account = get_object_or_404(ProviderAccount, pk=pk)
        outcome = None
        form = None
        if account.kind == GENERIC and account.api_config:
            data = request.POST if request.method == "POST" else None
            form = try_it.TryItForm(data, account=account, user=request.user)
            if request.method == "POST" and form.is_valid():
                outcome = try_it.run(form)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Try a request: {account.name}",
            "opts": self.model._meta,
            "original": account,
            "account": account,
            "provider_label": account.provider_class.label,
            "form": form,
            "outcome": outcome,
            "change_url": reverse("admin:providers_provideraccount_change", args=[account.pk]),
        }
        return TemplateResponse(request, "admin/providers/provideraccount/try_it.html", context)

    @method_decorator(sensitive_post_parameters())
    def test_view(self, request, pk):
        account = get_object_or_404(ProviderAccount, pk=pk)
        self.report(request, account)
        return redirect("admin:providers_provideraccount_change", pk)

    @method_decorator(sensitive_post_parameters())
    def pause_view(self, request, pk):
        return self.switch(request, pk, pause=True)

    @method_decorator(sensitive_post_parameters())
    def resume_view(self, request, pk):
        return self.switch(request, pk, pause=False)

    def switch(self, request, pk, *, pause: bool):
        account = get_object_or_404(ProviderAccount, pk=pk)
        if pause:
            pause_account(account=account)
            message = "Paused sync until resumed."
        else:
            released = resume_account(account=account)
            message = f"Resumed sync; {released} waiting ticket(s) released."
        self.log_change(request, account, message)
        self.message_user(request, f"{account.name}: {message}", messages.SUCCESS)
        return redirect("admin:providers_provideraccount_change", pk)

    def rotate_callback_secret_view(self, request, pk):
        self.rotate(request, get_object_or_404(ProviderAccount, pk=pk))
        return redirect("admin:providers_provideraccount_change", pk)

    @admin.action(description="Rotate callback secret", permissions=["change"])
    def rotate_callback_secrets(self, request, queryset):
        for account in queryset[:20]:
            self.rotate(request, account)

    def rotate(self, request, account):
        try:
            previous_until = rotate_callback_secret(account=account)
        except TicketActionError as exc:
            self.message_user(request, f"{account.name}: {exc}", messages.WARNING)
            return
        self.log_change(request, account, "Rotated the callback secret.")
        message = (
            f"new callback secret: {account.provider_class.label} tickets created from now on "
            "carry the new callback address."
        )
        if previous_until:
            message += (
                f" The old secret keeps working until {when(previous_until)}; after that, "
                "callbacks about tickets created before this rotation are refused."
            )
        if not (account.settings or {}).get("callback_base_url"):
            message += " Until callback_base_url is set in the defaults, tickets carry no callback address."
        self.message_user(request, f"{account.name}: {message}", messages.SUCCESS)

    @admin.action(description="Test connection")
    def test_connections(self, request, queryset):
        for account in queryset[:20]:
            self.report(request, account)

    def report(self, request, account):
        result = test_connection(account=account)
        level = messages.SUCCESS if result.ok else messages.ERROR
        self.message_user(request, f"{account.name}: {result.message} ({result.latency_ms} ms)", level)
