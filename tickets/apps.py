from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Tickets"

    def ready(self) -> None:
        from tickets import references, search_fts

        # A table rebuild by a later migration drops the tickets table's triggers on SQLite: the
        # search index's and the one that assigns references.
        post_migrate.connect(
            search_fts.repair_after_migrate, sender=self, dispatch_uid="tickets.search_fts.repair"
        )
        post_migrate.connect(
            references.repair_after_migrate, sender=self, dispatch_uid="tickets.references.repair"
        )
