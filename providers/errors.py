"""What can go wrong when talking to a provider, classified once.

The sync engine decides from the class alone: auth, validation and not-found are final;
rate-limited and transient are retried; a transient error with `may_have_applied` means the
request may have been applied, so a create is not blindly sent again.
"""


class ProviderConfigurationError(Exception):
    """The account is configured so that no call can work (missing credential, bad URL).

    Outside the ProviderError tree on purpose: it is never retried.
    """


class ProviderError(Exception):
    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


class ProviderAuthError(ProviderError):
    pass


class ProviderValidationError(ProviderError):
    def __init__(
        self,
        message: str,
        *,
        field_errors: dict[str, list[str]] | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, http_status=http_status)
        # Keys are console field names (ticket or extra-form fields) where the adapter could
        # map the provider's field; the rest stay under "__all__".
        self.field_errors = field_errors or {}


class ProviderNotFoundError(ProviderError):
    pass


class ProviderRateLimited(ProviderError):
    def __init__(self, message: str, *, retry_after: float | None = None, http_status=429) -> None:
        super().__init__(message, http_status=http_status)
        self.retry_after = retry_after


class ProviderTransientError(ProviderError):
    """A failure worth retrying.

    `may_have_applied` is True when the request reached the provider and the answer was
    lost or broken (read timeout, dropped connection, 500/502/504): safe to repeat for an
    idempotent update, not for a create.
    """

    def __init__(self, message: str, *, may_have_applied: bool = False, http_status=None) -> None:
        super().__init__(message, http_status=http_status)
        self.may_have_applied = may_have_applied


class ProviderResponseError(ProviderTransientError):
    """The status said success but the body could not be read."""

    def __init__(self, message: str, *, http_status=None) -> None:
        super().__init__(message, may_have_applied=True, http_status=http_status)
