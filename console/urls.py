from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console.health import healthz, readyz
from console.metrics import metrics
from tickets.dashboard import sync_dashboard

admin.site.site_header = "Ticket Console"
admin.site.site_title = "Ticket Console"

urlpatterns = [
    # (ProbeMiddleware answers the two probes first; these routes give them their names.)
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("admin/sync-dashboard/", sync_dashboard, name="sync_dashboard"),
    path("admin/", admin.site.urls),
    path("inbound/", include("tickets.views_inbound")),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("tickets.urls")),
]
