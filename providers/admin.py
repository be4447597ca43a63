from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html

from providers.forms import ProviderAccountForm, credential_field_name
from providers.models import ProviderAccount
from providers.registry import PROVIDERS, get_provider_class
from tickets.services import test_connection


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    form = ProviderAccountForm
    list_display = ("name", "kind", "base_url", "enabled", "health", "last_ok_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "base_url")
    readonly_fields = (
        "credentials_updated_at", "last_ok_at", "last_error", "last_error_at",
        "consecutive_failures", "test_connection_button",
    )
    actions = ["test_connections"]
    change_form_template = "admin/providers/provideraccount/change_form.html"

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ("name", "kind", "base_url", "enabled")}),
        ]
        for kind in PROVIDERS:
            provider_class = get_provider_class(kind)
            fieldsets.append((
                f"{provider_class.label} credentials",
                {
                    "fields": [credential_field_name(kind, k) for k in provider_class.credential_fields],
                    "classes": ("credentials", f"credentials-{kind}"),
                    "description": "Stored encrypted and never shown again. "
                    "Only the fields of the account's kind are used.",
                },
            ))
        fieldsets += [
            ("Defaults and mappings", {"fields": ("settings", "status_map", "priority_map")}),
            ("Limits", {"fields": ("rate_limit", "timeout", "paused_until")}),
            ("Health", {"fields": (
                "test_connection_button", "credentials_updated_at", "last_ok_at", "last_error",
                "last_error_at", "consecutive_failures",
            )}),
        ]
        return fieldsets

    def has_module_permission(self, request):
        return request.user.has_perm("providers.manage_provider_accounts") or request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission

    @admin.display(description="Health")
    def health(self, obj):
        if obj.consecutive_failures:
            return format_html('<span style="color:#b00">{} failure(s): {}</span>',
                               obj.consecutive_failures, obj.last_error[:80])
        return "OK" if obj.last_ok_at else "—"

    @admin.display(description="Connection")
    def test_connection_button(self, obj):
        if not obj or not obj.pk:
            return "Save the account first."
        url = reverse("admin:providers_provideraccount_test", args=[obj.pk])
        return format_html('<a class="button" href="{}">Test connection</a>', url)

    def get_urls(self):
        return [
            path("<int:pk>/test-connection/", self.admin_site.admin_view(self.test_view),
                 name="providers_provideraccount_test"),
            *super().get_urls(),
        ]

    def test_view(self, request, pk):
        if not self.has_change_permission(request):
            return redirect("admin:index")
        account = get_object_or_404(ProviderAccount, pk=pk)
        self.report(request, account)
        return redirect("admin:providers_provideraccount_change", pk)

    @admin.action(description="Test connection")
    def test_connections(self, request, queryset):
        for account in queryset[:20]:
            self.report(request, account)

    def report(self, request, account):
        result = test_connection(account=account)
        level = messages.SUCCESS if result.ok else messages.ERROR
        self.message_user(request, f"{account.name}: {result.message} ({result.latency_ms} ms)", level)
