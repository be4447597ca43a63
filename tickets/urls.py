from django.urls import path

from tickets import views

app_name = "tickets"

urlpatterns = [
    path("", views.ticket_list, name="list"),
    path("tickets/new/", views.ticket_create, name="create"),
    path("tickets/sync-states/", views.sync_states, name="sync_states"),
    path("tickets/<int:pk>/", views.ticket_detail, name="detail"),
    path("tickets/<int:pk>/edit/", views.ticket_edit, name="edit"),
    path("tickets/<int:pk>/status/", views.ticket_status, name="status"),
    path("tickets/<int:pk>/retry/", views.ticket_retry, name="retry"),
    path("tickets/<int:pk>/reply/", views.ticket_reply, name="reply"),
    path("tickets/<int:pk>/link/", views.ticket_link, name="link"),
    path("tickets/<int:pk>/cancel/", views.ticket_cancel, name="cancel"),
]
