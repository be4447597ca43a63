"""What a locked-out sign-in sees (django-axes' AXES_LOCKOUT_CALLABLE): the same sign-in page
(the staff UI's or the admin's), the username kept, and when to try again — not a bare 429."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

#: 429 Too Many Requests, as django-axes answers by default.
LOCKED_OUT_STATUS = 429


def lockout_message() -> str:
    minutes = max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    return (
        f"Too many failed sign-in attempts for this account from your address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )


def locked_out_form(form_class: type[AuthenticationForm], request: HttpRequest, username: str):
    """The sign-in form bound to the typed username, carrying the lockout as its error."""

    class LockedOutForm(form_class):
        def __init__(self) -> None:
            super().__init__(request, data={"username": username})
            self.fields["password"].required = False

        def clean(self):
            raise ValidationError(lockout_message(), code="locked_out")

    return LockedOutForm()


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    username = str((credentials or {}).get("username") or request.POST.get("username") or "")[:150]
    redirect_to = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
    if request.path.startswith(reverse("admin:index")):
        context = {
            **admin.site.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "form": locked_out_form(AdminAuthenticationForm, request, username),
            "username": username,
            REDIRECT_FIELD_NAME: redirect_to or reverse("admin:index"),
        }
        return render(request, "admin/login.html", context, status=LOCKED_OUT_STATUS)
    context = {"form": locked_out_form(AuthenticationForm, request, username), "next": redirect_to}
    return render(request, "registration/login.html", context, status=LOCKED_OUT_STATUS)
