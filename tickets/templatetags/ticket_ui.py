from django import template

from tickets.ui import badge_class, safe_remote_url

register = template.Library()


@register.filter
def sync_badge_class(sync_state: str) -> str:
    return badge_class(sync_state)


@register.filter(name="safe_remote_url")
def safe_remote_url_filter(url: str) -> str:
    return safe_remote_url(url or "")


@register.filter
def as_text(value) -> str:
    """A provider field value for reading: lists joined, yes/no for flags, JSON as JSON."""
    import json

    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


@register.simple_tag
def account_problems_for(user) -> list:
    """Accounts with a current problem, for the admin index's banner (tickets/access.py)."""
    from tickets.access import watched_accounts
    from tickets.problems import current_problems

    accounts = watched_accounts(user)
    return current_problems(accounts)


@register.filter
def manages_accounts(user) -> bool:
    from tickets.access import can_manage_accounts

    return can_manage_accounts(user)
