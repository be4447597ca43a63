from django.db import models
from django.utils import timezone

from providers import callback_secret
from providers.bounds import (
    RATE_BURST_MAX,
    RATE_BURST_MIN,
    RATE_LIMIT_MAX,
    RATE_LIMIT_MIN,
    TIMEOUT_MAX,
    TIMEOUT_MIN,
    validate_rate_burst,
    validate_rate_limit,
    validate_timeout,
)
from providers.fields import EncryptedJSONField, SealedJSON
from providers.registry import kind_choices


class ProviderAccount(models.Model):
    """One configured connection to an external ticketing service."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=kind_choices, db_index=True)
    base_url = models.URLField(max_length=500)
    credentials = EncryptedJSONField(blank=True, default=dict, editable=False)
    credentials_updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: The inbound callback secret(s) (providers/callback_secret.py). A field of its own rather
    #: than a reserved key in `credentials`: credentials are replaced as a whole by the account
    #: form, import_accounts and a change of kind, and a change there drops cached tokens,
    #: while the callback secret is made and rotated by the console alone, on its own clock.
    callback_secrets = EncryptedJSONField(blank=True, default=dict, editable=False)
    #: When the current callback secret was made: what the admin shows instead of the secret.
    callback_secret_set_at = models.DateTimeField(null=True, blank=True, editable=False)
    settings = models.JSONField(default=dict, blank=True)
    status_map = models.JSONField(default=dict, blank=True)
    priority_map = models.JSONField(default=dict, blank=True)
    #: How a generic account talks to its API (providers/generic/): requests, answers and
    #: errors as JSON; empty for every other kind. Never holds secrets (they are credentials).
    api_config = models.JSONField(default=dict, blank=True, verbose_name="API configuration")
    enabled = models.BooleanField(default=True)
    rate_limit = models.FloatField(
        default=5.0,
        validators=[validate_rate_limit],
        help_text=f"Requests per second, shared by all workers: 0 (no limit) or "
        f"{RATE_LIMIT_MIN:g} to {RATE_LIMIT_MAX:,.0f}.",
    )
    #: The bucket's size: how many requests may go at once after a quiet spell. 1 (the value
    #: accounts made before bursts existed keep) spaces every request by 1/rate.
    rate_burst = models.PositiveIntegerField(
        default=1,
        validators=[validate_rate_burst],
        verbose_name="burst",
        help_text=f"Requests that may go at once before the rate applies ({RATE_BURST_MIN} to "
        f"{RATE_BURST_MAX:,}).",
    )
    timeout = models.FloatField(
        default=15.0,
        validators=[validate_timeout],
        help_text=f"Seconds to wait for each answer ({TIMEOUT_MIN:g} to {TIMEOUT_MAX:g}).",
    )
    # health
    last_ok_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    paused_until = models.DateTimeField(null=True, blank=True)
    #: Start of the account's current problem (credentials refused, configuration, disabled):
    #: set once per incident — whoever sets it e-mails the provider admins — and cleared by the
    #: next successful call (tickets/problems.py).
    problem_since = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name="needs a provider admin since"
    )
    #: The rate limit's theoretical arrival time (tickets/limits.py): a request may start once
    #: this moment, less the burst's allowance, has come. Shared by all workers.
    next_request_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_provider_accounts", "Can configure provider accounts")]
        # The same bounds as the validators, for rows written around the form and the import
        # (NaN fails both: it is stored as NULL by SQLite and sorts above all in PostgreSQL).
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rate_limit=0)
                | models.Q(rate_limit__gte=RATE_LIMIT_MIN, rate_limit__lte=RATE_LIMIT_MAX),
                name="provideraccount_rate_limit_range",
            ),
            models.CheckConstraint(
                condition=models.Q(rate_burst__gte=RATE_BURST_MIN, rate_burst__lte=RATE_BURST_MAX),
                name="provideraccount_rate_burst_range",
            ),
            models.CheckConstraint(
                condition=models.Q(timeout__gte=TIMEOUT_MIN, timeout__lte=TIMEOUT_MAX),
                name="provideraccount_timeout_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if kwargs.get("update_fields") is None:
            # Setting callback_base_url is all an admin does: the secret it needs is made here.
            callback_secret.make_if_needed(self)
        super().save(*args, **kwargs)
        # A token obtained with the old credentials, or from another token endpoint or grant
        # (a generic account's auth configuration changed), must not outlive them.
        auth = self._auth_config()
        auth_changed = hasattr(self, "_stored_auth") and auth != self._stored_auth
        if getattr(self, "_credentials_changed", False) or auth_changed:
            AccessToken.objects.filter(account=self).delete()
            self._credentials_changed = False
        self._stored_auth = auth

    @classmethod
    def from_db(cls, db, field_names, values, **kwargs):
        account = super().from_db(db, field_names, values, **kwargs)
        account._stored_auth = account._auth_config()
        return account

    def _auth_config(self):
        """The sign-in part of a generic account's API configuration (None when not loaded)."""
        if "api_config" in self.get_deferred_fields():
            return None
        return self.api_config.get("auth") if isinstance(self.api_config, dict) else None

    def get_credentials(self) -> dict:
        value = self.credentials
        if isinstance(value, SealedJSON):
            return value.reveal()
        return dict(value or {})

    def get_callback_secrets(self) -> dict:
        value = self.callback_secrets
        if isinstance(value, SealedJSON):
            return value.reveal()
        return dict(value or {})

    def set_credentials(self, values: dict) -> None:
        self.credentials = dict(values)
        self.credentials_updated_at = timezone.now()
        self._credentials_changed = True

    @property
    def provider_class(self):
        from providers.registry import provider_class_for

        return provider_class_for(self.kind, self.api_config)

    def get_provider(self):
        return self.provider_class(self)


class AccessToken(models.Model):
    """A provider-issued access token, cached in the database so every worker shares it.

    One per account; the token and refresh token are encrypted like credentials.
    """

    account = models.OneToOneField(ProviderAccount, on_delete=models.CASCADE, related_name="access_token")
    secret = EncryptedJSONField(blank=True, default=dict)
    expires_at = models.DateTimeField(null=True, blank=True)
    obtained_at = models.DateTimeField(auto_now=True)
    #: Single flight (providers/tokens.py): the worker renewing the token now, and until when
    #: its lease holds (a worker that died mid-call loses it then). Others wait for its token.
    renewing_by = models.CharField(max_length=32, blank=True, default="")
    renewing_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"access token of {self.account_id}"
