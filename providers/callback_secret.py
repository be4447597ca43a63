"""An account's inbound callback secret: made, rotated, accepted, and put into an address.

Knight posts status changes to the callbackAddress a ticket was created with; the console's
own is `<callback_base_url>/inbound/knight/<account id>/<secret>/` (providers/inbound.py).
Whoever knows the secret can set the statuses of the account's tickets, so it is kept like a
credential: encrypted in `ProviderAccount.callback_secrets` as
`{"current": …, "previous": …, "previous_until": ISO time}`, and never written into settings,
tickets, pages, exports or sync records. The address is built when a create is sent.

Knight keeps the address a ticket was created with (updates carry none), so a rotation keeps
the previous secret accepted for `INBOUND_SECRET_GRACE` seconds; after that, callbacks about
tickets created before the rotation are refused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from providers.registry import PROVIDERS, get_provider_class

if TYPE_CHECKING:
    from providers.models import ProviderAccount


def calls_back(account: ProviderAccount) -> bool:
    # An unknown kind (not yet validated, or a module since removed) does not call back.
    return account.kind in PROVIDERS and get_provider_class(account.kind).inbound is not None


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def current(account: ProviderAccount) -> str:
    return str(account.get_callback_secrets().get("current") or "")


def previous_until(account: ProviderAccount, *, now: datetime) -> datetime | None:
    """Until when the previous secret is still accepted, or None when it no longer is."""
    stored = account.get_callback_secrets()
    until = parse_datetime(str(stored.get("previous_until") or ""))
    return until if stored.get("previous") and until and now < until else None


def accepted(account: ProviderAccount, *, now: datetime) -> list[str]:
    """The secrets a callback may carry now: the current one, and the previous one in its grace."""
    stored = account.get_callback_secrets()
    values = [str(stored["current"])] if stored.get("current") else []
    if previous_until(account, now=now):
        values.append(str(stored["previous"]))
    return values


def every_stored(account: ProviderAccount) -> list[str]:
    """Every secret the account holds, expired or not: all are kept out of records."""
    stored = account.get_callback_secrets()
    return [str(stored[key]) for key in ("current", "previous") if stored.get(key)]


def put_new(account: ProviderAccount, *, now: datetime) -> datetime | None:
    """Give `account` a new current secret (not saved). The one it replaces stays accepted
    until the returned time (None when there was none); an older previous one ends now."""
    old = current(account)
    until = now + timedelta(seconds=settings.INBOUND_SECRET_GRACE) if old else None
    values = {"current": new_secret()}
    if old and until:
        values.update(previous=old, previous_until=until.isoformat())
    account.callback_secrets = values
    account.callback_secret_set_at = now
    return until


def make_if_needed(account: ProviderAccount) -> None:
    """Make the first secret of a calling-back account whose settings name a callback_base_url
    (not saved: called from ProviderAccount.save)."""
    # callback_secret_set_at is set with every secret: no decryption on each save.
    if (
        calls_back(account)
        and (account.settings or {}).get("callback_base_url")
        and not account.callback_secret_set_at
    ):
        put_new(account, now=timezone.now())


@dataclass(frozen=True)
class Rotation:
    previous_until: datetime | None  # None: the account had no secret before


def rotate(account: ProviderAccount, *, only_if_missing: bool = False) -> Rotation | None:
    """Replace the account's secret now, saved; None when `only_if_missing` and it has one.
    Under a row lock, so two rotations cannot both keep the same secret as the previous one."""
    from providers.models import ProviderAccount

    with transaction.atomic():
        locked = ProviderAccount.objects.select_for_update().get(pk=account.pk)
        if only_if_missing and current(locked):
            rotation = None
        else:
            rotation = Rotation(previous_until=put_new(locked, now=timezone.now()))
            locked.save(update_fields=["callback_secrets", "callback_secret_set_at", "updated_at"])
    account.callback_secrets = locked.callback_secrets
    account.callback_secret_set_at = locked.callback_secret_set_at
    return rotation


def ensure(account: ProviderAccount) -> str:
    """The account's current secret, made (and saved) when it has none."""
    rotate(account, only_if_missing=True)
    return current(account)


def address(account: ProviderAccount, *, base_url: str, secret: str) -> str:
    route = get_provider_class(account.kind).inbound.route
    path = reverse("inbound", kwargs={"route": route, "account_id": account.pk, "secret": secret})
    return f"{base_url.rstrip('/')}{path}"
