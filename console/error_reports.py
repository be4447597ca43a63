"""What error pages and error e-mails may show (DEFAULT_EXCEPTION_REPORTER_FILTER).

Django's filter hides `sensitive_post_parameters` and `sensitive_variables` only when DEBUG is
off; the DEBUG page then shows every typed credential. This filter applies them in DEBUG too,
and, as the net under the decorators, hides any frame variable whose value contains a secret
the request carries (a credential typed into a form, a password).
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

#: POST fields whose values are secrets: the account form's credential fields, passwords.
SECRET_FIELD = re.compile(r"^cred__|pass(word)?|secret|token|api[-_]?key", re.I)
#: Shorter values are not looked for in variables (they would match too much).
MIN_SECRET_LENGTH = 4


def secrets_of(request) -> set[str]:
    post = getattr(request, "POST", None) if request is not None else None
    if not post:
        return set()
    return {
        value
        for key, values in post.lists()
        if SECRET_FIELD.search(key)
        for value in values
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH
    }


class CredentialHidingFilter(SafeExceptionReporterFilter):
    def is_active(self, request) -> bool:
        return True  # DEBUG or not: a credential on a screen or in a mail is a leak either way

    def get_post_parameters(self, request):
        parameters = super().get_post_parameters(request)
        if not any(SECRET_FIELD.search(key) for key in parameters):
            return parameters
        cleansed = parameters.copy()
        for key in cleansed:
            if SECRET_FIELD.search(key):
                cleansed[key] = self.cleansed_substitute
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame) -> list[tuple[str, Any]]:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        secrets = secrets_of(request)
        if not secrets:
            return variables
        return [
            (name, self.cleansed_substitute if self.holds(value, secrets) else value)
            for name, value in variables
        ]

    @staticmethod
    def holds(value: Any, secrets: set[str]) -> bool:
        try:
            text = value if isinstance(value, str) else repr(value)
        except Exception:  # noqa: BLE001 - a repr that fails shows nothing either
            return False
        return any(secret in text for secret in secrets)
