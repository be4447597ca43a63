"""Fixtures of the hostile-input and hardening tests."""

import os

import pytest
from django.contrib.auth.models import Permission, User


@pytest.fixture
def superuser_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture
def agent_client(client):
    agent = User.objects.create_user("agent", "agent@example.com")
    agent.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="tickets", codename__in=("view_ticket", "add_ticket", "change_ticket")
        )
    )
    client.force_login(agent)
    return client


# --- hypothesis profiles (tests/security/test_fuzz_inputs.py) ----------------------------------
# "ci" (the default) is derandomized: the same examples every run, so a failure reproduces.
# HYPOTHESIS_PROFILE=explore draws new, more numerous examples for a local hunt.
from hypothesis import HealthCheck, settings  # noqa: E402

_COMMON = {
    "deadline": None,  # one request may wait on SQLite's lock; time is bounded by the counts
    "database": None,  # nothing written into the repository
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
}
settings.register_profile("ci", derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("explore", derandomize=False, max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
