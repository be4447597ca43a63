"""The console's vocabulary is declared once (providers/vocabulary.py) and the ticket model,
the account form and the adapters' sentences agree with it."""

from providers.forms import CONSOLE_PRIORITIES, CONSOLE_STATUSES
from providers.kapture import KaptureProvider
from providers.keliweb import KeliwebProvider
from providers.vocabulary import TICKET_FIELD_LABELS
from tickets.models import Ticket


def test_the_ticket_model_offers_exactly_the_shared_status_and_priority_lists():
    assert [value for value, _ in Ticket._meta.get_field("status").choices] == list(CONSOLE_STATUSES)
    assert [value for value, _ in Ticket._meta.get_field("priority").choices] == list(CONSOLE_PRIORITIES)


def test_field_labels_in_sentences_are_the_models_verbose_names():
    for name, label in TICKET_FIELD_LABELS.items():
        assert str(Ticket._meta.get_field(name).verbose_name) == label


def test_why_a_change_stays_here_names_the_fields_as_people_read_them():
    reason = KeliwebProvider.reason_kept_here(["requester_email", "due_at"])
    # Keliweb has no update call at all: its own reason is given, whatever the fields.
    assert reason == KeliwebProvider.reason_unsupported("update")
    assert KaptureProvider.reason_kept_here(["requester_email", "due_at"]) == (
        "Kapture CX cannot change the requester email or due at of a ticket after it is created."
    )
