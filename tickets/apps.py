from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Tickets"

    def ready(self) -> None:
        from tickets import search_fts

        # A table rebuild by a later migration drops the search index's triggers on SQLite.
        post_migrate.connect(
            search_fts.repair_after_migrate, sender=self, dispatch_uid="tickets.search_fts.repair"
        )
