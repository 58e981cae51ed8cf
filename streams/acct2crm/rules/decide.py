"""Where each rule of docs/rules.md is decided.

Two steps, both pure:

``classify(change, scope, applied, mapping=...)``
    everything that needs no CRM knowledge: deletes (R3), snapshots, scope
    (R1/R2/R5), bad rows, replays, TOAST placeholders, edits of columns the
    field mapping does not count. Returns a final ``Outcome`` or a
    ``SyncIntent`` whose fields the mapping computed, for the sink.
``decide(intent, view, ours)``
    R1a/R1b/R2a/R2b/R2c/R2d from the CRM records that hold the codes involved
    and, for R2d, the record whose ``external_ref`` names this row. The sink
    calls it again with the CRM's own answer after a 409 or 404, so the table
    (a cache) can never cause a duplicate or a wrong overwrite.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from acct2crm.model.crm import CrmRecord, Fields
from acct2crm.rules.change import (
    UNAVAILABLE,
    Action,
    Change,
    Op,
    Position,
    Row,
    external_ref,
)
from acct2crm.rules.codes import clean_text, code_key
from acct2crm.rules.mapping import DEFAULT_MAPPING, FieldMapping
from acct2crm.rules.resets import RESET_REASON, looks_like_reset
from acct2crm.rules.scope import SyncScope


@dataclass(frozen=True)
class Outcome:
    """A change settled without asking the CRM."""

    action: Action
    reason: str
    code: str | None = None


@dataclass(frozen=True)
class SyncIntent:
    """An in-scope insert or update the sink must reconcile with the CRM."""

    tenant: str
    accounting_id: int
    op: Op
    code: str
    previous_code: str | None  # set only when the code changed to another customer's key
    fields: Fields  # mapped fields known after the change; TOAST-unreadable ones omitted
    position: Position
    create_only: frozenset[str] = frozenset()  # fields sales own once created: never patched

    @property
    def external_ref(self) -> str:
        return external_ref(self.tenant, self.accounting_id)

    @property
    def is_insert(self) -> bool:
        return self.op in (Op.CREATE, Op.BACKFILL, Op.SNAPSHOT)

    def code_keys(self) -> tuple[str, ...]:
        """Codes this intent touches: a rename touches two."""
        keys = [code_key(self.code)]
        if self.previous_code is not None:
            keys.append(code_key(self.previous_code))
        return tuple(keys)


@dataclass(frozen=True)
class Create:
    fields: Fields


@dataclass(frozen=True)
class Patch:
    crm_id: int
    fields: Fields


@dataclass(frozen=True)
class Decision:
    """The action to report and the single CRM call (if any) that achieves it."""

    action: Action
    reason: str
    call: Create | Patch | None = None
    crm_id: int | None = None  # the CRM customer concerned, when one exists


# ---------------------------------------------------------------- classify


def resolve_row(before: Row | None, after: Row) -> dict[str, object]:
    """The row after the change with every TOAST placeholder resolved.

    A placeholder means "unchanged": the value before the change is used when
    Debezium gave one, otherwise the column is left out so that no field is
    computed from it, and nothing is written to that field.
    """
    row: dict[str, object] = {}
    for name, value in after.items():
        if value != UNAVAILABLE:
            row[name] = value
            continue
        prior = before.get(name) if before is not None else None
        if before is not None and name in before and prior != UNAVAILABLE:
            row[name] = prior
    return row


def resolve_fields(
    before: Row | None, after: Row, mapping: FieldMapping = DEFAULT_MAPPING
) -> Fields:
    """Mapped fields after the change, NFC and stripped, as the mapping computes them."""
    return mapping.fields(resolve_row(before, after))


def replay_reason(applied_lsn: int) -> str:
    """Why a change at or below the row's applied position writes nothing (R4)."""
    return f"replay: this row was already synced at lsn {applied_lsn}"


def classify(
    change: Change,
    scope: SyncScope,
    applied: Position | None = None,
    *,
    snapshot_as_insert: bool = False,
    mapping: FieldMapping = DEFAULT_MAPPING,
) -> Outcome | SyncIntent:
    """Settle a change without the CRM, or say what the sink must reconcile."""
    if change.op is Op.TRUNCATE:
        return Outcome(Action.IGNORED_DELETE, "R3: table truncated; CRM records are kept")
    if change.op is Op.DELETE:
        return Outcome(Action.IGNORED_DELETE, "R3: row deleted; CRM record is kept",
                       mapping.code(change.before))
    if change.op is Op.SNAPSHOT and not snapshot_as_insert:
        return Outcome(
            Action.IGNORED_SNAPSHOT,
            "row existed before the sync started; it is created when next edited "
            "(or by `acct2crm backfill`)",
            mapping.code(change.after),
        )
    after = change.after
    if after is None or change.accounting_id is None:
        return Outcome(Action.FAILED, f"op={change.op.value} change carries no row after it")
    if UNAVAILABLE in after.values():  # a column Debezium could not read (TOAST)
        resolved: Row = resolve_row(change.before, after)
        merged: Row = {**after, **resolved}
    else:  # the common case: the row as it came, read only
        resolved = merged = after
    # the code alone settles every outcome; the other fields only a command needs
    # (a replay is mostly outcomes: they cost a dry run 1.3 of its ~14 us a change)
    code = mapping.code_field(resolved)
    if not scope.contains(merged):
        return Outcome(
            Action.IGNORED_OUT_OF_SCOPE,
            f"{'R2' if change.op is Op.UPDATE else 'R1'}/R5: row is not in the sync scope "
            f"({scope.describe()})",
            code,
        )
    if not code:
        return Outcome(Action.FAILED, "bad row: code is empty after stripping", code)
    if looks_like_reset(change.position, applied):
        assert applied is not None
        return Outcome(
            Action.FAILED,
            f"{RESET_REASON}: lsn {change.position.lsn} is not after this row's last "
            f"applied lsn {applied.lsn}, yet it was committed later; held back, not "
            "dropped: run `acct2crm positions rebase`",
            code,
        )
    if applied is not None and change.position.lsn <= applied.lsn:
        return Outcome(
            Action.UNCHANGED,
            f"{replay_reason(applied.lsn)} (this change is lsn {change.position.lsn}); "
            "nothing written",
            code,
        )
    previous = mapping.code(change.before) if change.op is Op.UPDATE else None
    if previous is not None and code_key(previous) == code_key(code):
        previous = None
    before = change.before
    if (
        change.op is Op.UPDATE
        and before is not None
        and previous is None
        and scope.contains(before)
        and not mapping.changed(before, after)
    ):
        return Outcome(
            Action.UNCHANGED,
            "R2a: only columns the field mapping does not count as a change were edited; "
            "nothing written",
            code,
        )
    op = Op.BACKFILL if change.op is Op.SNAPSHOT else change.op
    fields = mapping.fields(resolved)
    return SyncIntent(
        tenant=change.tenant,
        accounting_id=change.accounting_id,
        op=op,
        code=code,
        previous_code=previous,
        fields=fields,
        position=change.position,
        create_only=mapping.create_only,
    )


# ---------------------------------------------------------------- decide


def changed_fields(
    fields: Fields, record: CrmRecord, create_only: frozenset[str] = frozenset()
) -> Fields:
    """The mapped fields an update may write whose value differs from the CRM's.

    Fields sales own once created (``create_only``) are never compared: what
    sales made of them is not a difference to undo.
    """
    return {
        name: value
        for name, value in fields.items()
        if name not in create_only and clean_text(value) != clean_text(record.fields.get(name))
    }


def decide(
    intent: SyncIntent,
    view: Mapping[str, CrmRecord | None],
    ours: CrmRecord | None = None,
) -> Decision:
    """Apply R1a/R1b (inserts) or R2a/R2b/R2c/R2d (updates) to the CRM's records.

    ``view`` maps code keys to the CRM record holding that code, or ``None``
    when the CRM has none; it must cover ``intent.code_keys()``. ``ours`` is
    the CRM record whose ``external_ref`` names this row under some other
    code (see ``pick_ours``), or ``None``: only an update whose codes the CRM
    does not know looks at it (R2d), and an R2c create is only sound once it
    was looked up.
    """
    ref = intent.external_ref
    holder = view.get(code_key(intent.code))
    if intent.is_insert:
        return _decide_insert(intent, holder, ref)
    if holder is not None:
        diff = changed_fields(intent.fields, holder, intent.create_only)
        if not diff:
            return Decision(
                Action.UNCHANGED, "R2a: the CRM already holds these values", crm_id=holder.id
            )
        return Decision(
            Action.UPDATED,
            f"R2a: updated {', '.join(sorted(diff))} of CRM customer {holder.id}",
            Patch(holder.id, {**diff, "external_ref": ref}),
            holder.id,
        )
    if intent.previous_code is not None:
        previous = view.get(code_key(intent.previous_code))
        if previous is not None:
            diff = changed_fields(intent.fields, previous, intent.create_only)
            return Decision(
                Action.UPDATED,
                f"R2b: code changed {previous.code} → {intent.code}; "
                f"CRM customer {previous.id} renamed",
                Patch(previous.id, {**diff, "code": intent.code, "external_ref": ref}),
                previous.id,
            )
    if ours is not None and ours.external_ref == ref:
        diff = changed_fields(intent.fields, ours, intent.create_only)
        return Decision(
            Action.UPDATED,
            f"R2d: CRM customer {ours.id} already holds this row under code {ours.code}; "
            f"updated, its code becomes {intent.code}",
            Patch(ours.id, {**diff, "code": intent.code, "external_ref": ref}),
            ours.id,
        )
    return Decision(
        Action.CREATED,
        "R2c: edited customer was not in the CRM; created",
        Create({**intent.fields, "external_ref": ref}),
    )


def pick_ours(records: Iterable[CrmRecord], ref: str) -> CrmRecord | None:
    """The record R2d follows among those the CRM lists for ``external_ref == ref``.

    Exact matches only; if an earlier fault left several, the oldest (lowest
    id) is the one the sync made first, so it is the one kept in step.
    """
    mine = [r for r in records if r.external_ref == ref]
    return min(mine, key=lambda r: r.id) if mine else None


def _decide_insert(intent: SyncIntent, holder: CrmRecord | None, ref: str) -> Decision:
    if holder is None:
        rule = "backfill (R1a)" if intent.op is Op.BACKFILL else "R1a"
        return Decision(
            Action.CREATED,
            f"{rule}: new code; created in the CRM",
            Create({**intent.fields, "external_ref": ref}),
        )
    if holder.external_ref == ref:
        diff = changed_fields(intent.fields, holder, intent.create_only)
        reason = f"insert seen again; CRM customer {holder.id} was created by this sync"
        if not diff:
            return Decision(Action.CREATED, reason, crm_id=holder.id)
        return Decision(
            Action.CREATED, reason + "; fields refreshed", Patch(holder.id, diff), holder.id
        )
    owner = "made in the CRM" if holder.external_ref is None else f"from {holder.external_ref}"
    return Decision(
        Action.SKIPPED_DUPLICATE_CODE,
        f"R1b: CRM already has code {holder.code} (customer {holder.id}, {owner}); not touched",
        crm_id=holder.id,
    )
