"""The settings the tests run with (pyproject's DJANGO_SETTINGS_MODULE, and the worker
processes they start): the console's own, plus a test-only provider kind that runs through
the same contract and fault suites as the real ones (tests/example_provider.py)."""

from console.settings import *  # noqa: F403

EXTRA_PROVIDERS = {
    "example": ("tests.example_provider.ExampleProvider", "tests.example_provider.ExampleEmulator"),
}
