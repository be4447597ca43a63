"""Provider kinds: one line each. Adding a provider = one module + one line here."""

from importlib import import_module

PROVIDERS: dict[str, str] = {
    "kapture": "providers.kapture.KaptureProvider",
    "keliweb": "providers.keliweb.KeliwebProvider",
    "knight": "providers.knight.KnightProvider",
    "motadata": "providers.motadata.MotadataProvider",
    "particlespace": "providers.particlespace.ParticleSpaceProvider",
}


def get_provider_class(kind: str):
    try:
        dotted = PROVIDERS[kind]
    except KeyError:
        from providers.errors import ProviderConfigurationError

        raise ProviderConfigurationError(f"Unknown provider kind '{kind}'.") from None
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)


def kind_choices() -> list[tuple[str, str]]:
    return [(kind, get_provider_class(kind).label) for kind in PROVIDERS]
