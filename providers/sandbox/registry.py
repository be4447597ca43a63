"""The emulators the sandbox serves: one per registered provider kind (prefix = kind).

Derived from providers/registry.py, so a provider registered there (or in the
`EXTRA_PROVIDERS` setting) is served too, with no line here.
"""

from providers.registry import EMULATORS as EMULATOR_PATHS
from providers.registry import load


def emulator_classes() -> list:
    classes = []
    for kind, dotted in EMULATOR_PATHS.items():
        cls = load(dotted)
        if cls.name != kind:
            raise ValueError(f"The emulator {dotted} serves '/{cls.name}', its kind is '{kind}'.")
        classes.append(cls)
    return classes


EMULATORS = emulator_classes()
