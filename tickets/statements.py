"""Statements of the sync's hot paths, written by hand rather than by the ORM.

A batch run writes each wave's outcomes with a few statements (tickets/outbound.py,
`finish_group`), and every create inserts its ticket (`insert_new`). Built by Django's compiler,
those statements cost the worker, and the process saving the ticket, more CPU than the database
spent running them (docs/benchmarks.md, "Create path"): the compiler resolves, copies and
quotes every expression each time. Here they are assembled directly, under two rules that keep
them as safe as the ORM's: every name comes from the model and is quoted by the connection, and
every value is a parameter, prepared by its model field exactly as the ORM prepares it
(`parameter`).
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models, router
from django.db.models.signals import post_save, pre_save

from tickets.models import SyncState


def insert_new(obj: models.Model) -> None:
    """INSERT `obj`, a new row, as `obj.save()` would, and set its pk (RETURNING, which
    PostgreSQL and SQLite both have): each field's `pre_save` (auto_now_add and auto_now),
    values prepared by the fields, the pre_save and post_save signals sent. Not for a model
    with parents. What a model's own `save()` adds after its INSERT, the caller does
    (`create_ticket` calls `Ticket.inserted`). For `create_ticket`, whose save was a third of a
    create's CPU in the compiler alone."""
    model = type(obj)
    using = router.db_for_write(model, instance=obj)
    connection = connections[using]
    pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=None)
    into, fields = insert_into(model, connection)
    params: list = []
    marks = [parameter(field, field.pre_save(obj, True), connection, params) for field in fields]
    pk = connection.ops.quote_name(model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"{into} VALUES ({', '.join(marks)}) RETURNING {pk}", params)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding, obj._state.db = False, using
    post_save.send(sender=model, instance=obj, created=True, update_fields=None, raw=False, using=using)


def insert_rows(model: type[models.Model], objs: list[models.Model]) -> None:
    """INSERT `objs` (new rows, pk left to the database) in as few statements as the backend's
    parameter limit allows; their pks are not read back. For a wave's SyncAttempt rows, which
    nothing reads in the same run."""
    if not objs:
        return
    connection = connections[router.db_for_write(model)]
    into, fields = insert_into(model, connection)
    size = connection.ops.bulk_batch_size(fields, objs) or len(objs)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), size):
            params: list = []
            rows = []
            for obj in objs[start : start + size]:
                marks = [parameter(field, field.pre_save(obj, True), connection, params) for field in fields]
                rows.append(f"({', '.join(marks)})")
            cursor.execute(f"{into} VALUES {', '.join(rows)}", params)


def insert_into(model: type[models.Model], connection) -> tuple[str, list[models.Field]]:
    """`INSERT INTO table (columns)` of every concrete field but the pk, and those fields."""
    quote = connection.ops.quote_name
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(quote(field.column) for field in fields)
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns})", fields  # noqa: S608


def write_fenced(kind, writes: list[tuple[Any, dict]], *, revision: str | None) -> set[int]:
    """One UPDATE of the rows still `sending` at the attempt they were claimed at (and, with
    `revision` "exact" or "gt", whose revision column is equal to, or greater than, the
    revision sent); returns the pks it wrote (UPDATE ... RETURNING, which PostgreSQL and SQLite
    both have).

    `kind` is the rows' OutboundKind (tickets/outbound.py), `writes` pairs each row's Outcome
    with the columns it writes. The ORM's compiler resolved and copied every CASE branch, a
    third of a worker's CPU per ticket (docs/benchmarks.md, "Create path")."""
    connection = connections[router.db_for_write(kind.model)]
    quote = connection.ops.quote_name
    meta = kind.model._meta
    pk = quote(meta.pk.column)
    # Rows claimed at the same attempt (and sent at the same revision) share one fence, so a
    # bulk's rows are one `pk IN (...)` rather than a condition each: the same rows pass.
    fences: dict[tuple, list[int]] = {}
    for outcome, _ in writes:
        row = outcome.row
        sent = getattr(row, kind.revision_field) if revision is not None else None
        fences.setdefault((row.attempts, sent), []).append(row.pk)
    conditions, fence_params = [], []
    for (attempts, sent), pks in fences.items():
        condition = f"{pk} IN ({', '.join(['%s'] * len(pks))}) AND {quote('attempts')} = %s"
        fence_params += [*pks, attempts]
        if revision is not None:
            condition += (
                f" AND {quote(meta.get_field(kind.revision_field).column)} {REVISION_OPERATORS[revision]} %s"
            )
            fence_params.append(sent)
        conditions.append(f"({condition})")
    assignments, set_params = set_clause(kind, writes, connection)
    statement = (
        f"UPDATE {quote(meta.db_table)} SET {assignments} "  # noqa: S608 - names quoted, values parameters
        f"WHERE ({' OR '.join(conditions)}) AND {quote('sync_state')} = %s RETURNING {pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [*set_params, *fence_params, SyncState.SENDING])
        return {written for (written,) in cursor.fetchall()}


REVISION_OPERATORS = {"exact": "=", "gt": ">"}


def set_clause(kind, writes: list[tuple[Any, dict]], connection) -> tuple[str, list]:
    """The SET of one UPDATE for many rows: a value every row shares as is, else a CASE on the
    pk (a row that does not write the column keeps its own value). In a CASE, a row whose
    `finish_only_fields` value is the one it held when claimed (an update's remote id, say)
    needs no branch: nothing else wrote it since."""
    quote = connection.ops.quote_name
    meta = kind.model._meta
    pk = quote(meta.pk.column)
    # PostgreSQL cannot type a CASE of parameters by itself (bulk_update casts it too).
    casted = connection.features.requires_casted_case_in_updates
    assignments, params = [], []
    for name in sorted({name for _, values in writes for name in values}):
        field = meta.get_field(name)
        column = quote(field.column)
        given = [(outcome.row, values[name]) for outcome, values in writes if name in values]
        first = given[0][1]
        if len(given) == len(writes) and all(same(value, first) for _, value in given):
            assignments.append(f"{column} = {parameter(field, first, connection, params)}")
            continue
        if name in kind.finish_only_fields:
            given = [(row, value) for row, value in given if not same(value, getattr(row, name, UNSET))]
            if not given:
                continue
        branches = []
        for row, value in given:
            params.append(row.pk)
            branches.append(f"WHEN {pk} = %s THEN {parameter(field, value, connection, params)}")
        case = f"CASE {' '.join(branches)} ELSE {column} END"
        assignments.append(
            f"{column} = CAST({case} AS {field.cast_db_type(connection)})" if casted else f"{column} = {case}"
        )
    return ", ".join(assignments), params


def parameter(field: models.Field, value: Any, connection, params: list) -> str:
    """The placeholder of `value` in `field`'s column, its prepared value added to `params`."""
    prepared = field.get_db_prep_save(value, connection=connection)
    if prepared is None:
        return "NULL"
    params.append(prepared)
    return "%s"


UNSET = object()


def same(value: Any, other: Any) -> bool:
    """Equal and of one type (so 1, True and 1.0 are three values, as the column sees them)."""
    return type(value) is type(other) and value == other
