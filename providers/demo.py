"""Demo accounts: one per provider kind, pointing at the local sandbox."""

from providers.models import ProviderAccount
from providers.registry import PROVIDERS, get_provider_class
from providers.sandbox.credentials import load_or_create


def ensure_demo_accounts(sandbox_url: str) -> list[str]:
    credentials = load_or_create()
    names = []
    for kind in PROVIDERS:
        provider_class = get_provider_class(kind)
        name = f"Sandbox {provider_class.label}"
        account, created = ProviderAccount.objects.get_or_create(
            name=name,
            defaults={
                "kind": kind,
                "base_url": f"{sandbox_url.rstrip('/')}/{kind}",
                "settings": dict(getattr(provider_class, "demo_settings", {})),
                "status_map": provider_class.default_status_map,
                "priority_map": provider_class.default_priority_map,
            },
        )
        if created or account.base_url.startswith(sandbox_url.rstrip("/")):
            # Keep demo accounts in step with the sandbox's (regenerable) credentials file.
            account.set_credentials(credentials.get(kind, {}))
            account.save()
        names.append(name)
    return names
