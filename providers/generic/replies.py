"""A ticket's conversation read from a fetch answer, as a generic configuration maps it
(`operations.fetch.response.replies`). Pure.

    "replies": {
      "items": "replies.reply",                       // where the list is in the fetch item
      "remote_id": "replyid",                         // each reply's id (a digest when absent)
      "body": "message", "author": ["admin", "name"], "date": "date",
      "by_staff": {"path": "admin", "not_equals": ""},   // written by the provider's agents
      "skip": {"path": "replyid", "equals": "0"},         // entries that are not replies
      "newest_first": false                           // true: the answer lists the latest first
    }

`remote_id`, `body`, `author` and `date` are response mappings over one entry (a path, a
{"template": ...} reading `answer` = the entry, or a list of them); `by_staff` and `skip` are
conditions as in error rules (`path` with equals, not_equals, in, contains or exists), or a
list of them (any one holding is enough).
"""

from __future__ import annotations

from typing import Any

from providers.base import RemoteReply
from providers.generic.rules import matches
from providers.generic.template import MISSING, as_text, digest, mapped_value, resolve


def conversation(item: Any, spec: dict[str, Any], context: dict[str, Any]) -> list[RemoteReply]:
    """The replies of one fetched ticket, oldest first (none when the answer lists none)."""
    found = resolve(item, spec["items"])
    if found is MISSING or found is None:
        return []
    entries = found if isinstance(found, list) else [found]  # one reply may come unlisted
    if spec.get("newest_first"):
        entries = list(reversed(entries))
    replies = []
    for entry in entries:
        if any_holds(spec.get("skip"), entry):
            continue
        remote_id = mapped_value(entry, spec.get("remote_id"), context)
        replies.append(
            RemoteReply(
                remote_id=as_text(remote_id) if remote_id is not None else digest(entry),
                body=as_text(mapped_value(entry, spec.get("body"), context)),
                author=as_text(mapped_value(entry, spec.get("author"), context)).strip(),
                by_provider_staff=any_holds(spec.get("by_staff"), entry),
                date=as_text(mapped_value(entry, spec.get("date"), context)),
            )
        )
    return replies


def any_holds(conditions: Any, entry: Any) -> bool:
    if not conditions:
        return False
    listed = conditions if isinstance(conditions, list) else [conditions]
    return any(matches(condition, 0, entry) for condition in listed)
