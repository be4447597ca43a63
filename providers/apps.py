from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Providers"

    def ready(self) -> None:
        from console import checks  # noqa: F401 - registers the console's system checks
        from providers import egress  # noqa: F401 - registers the PROVIDER_PRIVATE_HOSTS check
