"""Provider kinds: one line each, naming the provider class and its sandbox emulator.

Adding a provider = one module (provider + emulator) + one line here, or one line in the
`EXTRA_PROVIDERS` setting (a provider living outside this package, e.g. the test-only one in
tests/example_provider.py that the test settings register). Everything that lists kinds —
forms, admin, demo accounts, the sandbox, the contract and fault suites — reads this registry.
"""

from importlib import import_module

from django.conf import settings

#: kind -> (provider class, sandbox emulator class), as dotted paths; None: no emulator (the
#: generic provider speaks whatever API its account's configuration describes).
BUILT_IN: dict[str, tuple[str, str | None]] = {
    "kapture": ("providers.kapture.KaptureProvider", "providers.sandbox.kapture.KaptureEmulator"),
    "keliweb": ("providers.keliweb.KeliwebProvider", "providers.sandbox.keliweb.KeliwebEmulator"),
    "knight": ("providers.knight.KnightProvider", "providers.sandbox.knight.KnightEmulator"),
    "motadata": ("providers.motadata.MotadataProvider", "providers.sandbox.motadata.MotadataEmulator"),
    "particlespace": (
        "providers.particlespace.ParticleSpaceProvider",
        "providers.sandbox.particlespace.ParticleSpaceEmulator",
    ),
    "generic": ("providers.generic.provider.GenericProvider", None),
}


def registered() -> dict[str, tuple[str, str | None]]:
    """The built-in kinds plus the settings' `EXTRA_PROVIDERS` (same shape, never replacing one)."""
    extra = dict(getattr(settings, "EXTRA_PROVIDERS", None) or {})
    clashing = sorted(set(extra) & set(BUILT_IN))
    if clashing:
        raise ValueError(f"EXTRA_PROVIDERS names built-in kinds: {', '.join(clashing)}.")
    for kind, entry in extra.items():
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise ValueError(
                f"EXTRA_PROVIDERS['{kind}'] must be (provider class, emulator class) as dotted paths."
            )
    return {**BUILT_IN, **{kind: (str(p), str(e) if e else None) for kind, (p, e) in extra.items()}}


REGISTRY = registered()
#: kind -> the provider class's dotted path (every place that lists or checks kinds).
PROVIDERS: dict[str, str] = {kind: provider for kind, (provider, _) in REGISTRY.items()}
#: kind -> the sandbox emulator's dotted path (providers/sandbox/registry.py), for the kinds
#: that have one: the sandbox, the demo accounts and the contract and fault suites read this.
EMULATORS: dict[str, str] = {kind: emulator for kind, (_, emulator) in REGISTRY.items() if emulator}


def load(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)


def get_provider_class(kind: str):
    try:
        dotted = PROVIDERS[kind]
    except KeyError:
        from providers.errors import ProviderConfigurationError

        raise ProviderConfigurationError(f"Unknown provider kind '{kind}'.") from None
    return load(dotted)


def provider_class_for(kind: str, api_config: dict | None = None):
    """The class for an account of `kind`: a configurable kind (the generic provider) builds
    one from the account's API configuration; every other kind is its registered class."""
    provider_class = get_provider_class(kind)
    configured = getattr(provider_class, "configured", None)
    return configured(api_config or {}) if configured is not None else provider_class


def is_configurable(kind: str) -> bool:
    """True for a kind whose accounts each have a class of their own (provider_class_for)."""
    return hasattr(get_provider_class(kind), "configured")


def kind_choices() -> list[tuple[str, str]]:
    return [(kind, get_provider_class(kind).label) for kind in PROVIDERS]
