"""Conflicts: what to do with an invoice when QuickBooks' version differs from the agreed one.

A pure decision from three neutral forms (ours, theirs and what both last agreed on), the field
mapping and the configured rule; no I/O. The importer carries the decision out.

Changes are merged field by field: what only QuickBooks changed is taken into the portal, what
only the portal changed is sent to QuickBooks. The rule decides only the fields both sides
changed to different values (a *clash*): hold the invoice for review, or let one side win
those fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sync.mappers.invoice import InvoiceMapping
from sync.models import SyncConfiguration


class Action(StrEnum):
    # Only QuickBooks' SyncToken moved (a payment, our own echo): take the new token.
    TAKE_TOKEN = "take_token"
    # Take the fields in ``Decision.apply`` from QuickBooks (and send the portal's after).
    MERGE = "merge"
    # Both changed a field differently: keep both versions for staff to choose.
    HOLD = "hold"
    # Already held for review: keep both versions current, count it once.
    REFRESH_HELD = "refresh_held"


@dataclass(frozen=True)
class Decision:
    action: Action
    # MERGE: the fields taken from QuickBooks.
    apply: frozenset[str] = field(default_factory=frozenset)
    # The portal's own changes are then sent (a sparse update of what differs from agreed).
    push_after: bool = False
    # Both sides changed a field differently; ``winner`` says whose value the rule kept.
    conflict: bool = False
    winner: str = ""
    # A void clashed: the portal's whole version is sent, not only what it changed.
    whole: bool = False
    # Both changed the lines, different ones: the positions (0-based) of the lines only the
    # portal changed. QuickBooks' lines are taken but these, which are then sent.
    keep_lines: frozenset[int] = field(default_factory=frozenset)


def _changed(now: dict, agreed: dict) -> set[str]:
    return {name for name in now.keys() | agreed.keys() if now.get(name) != agreed.get(name)}


def decide(
    *,
    agreed: dict,
    ours: dict,
    theirs: dict,
    mapping: InvoiceMapping,
    rule: str,
    held: bool,
) -> Decision:
    """Decide for one invoice. ``held``: the binding is already held for review."""
    qbo_changed = _changed(mapping.project(theirs, "from"), mapping.project(agreed, "from"))
    ours_to = mapping.project(ours, "to")
    local_changed = _changed(ours_to, mapping.project(agreed, "to"))
    if not qbo_changed:
        return Decision(Action.TAKE_TOKEN, push_after=bool(local_changed) and not held)
    theirs_to = mapping.project(theirs, "to")
    if any(side.get("void") != agreed.get("void") for side in (ours, theirs)):
        # A void is the whole invoice (its neutral form drops the rest): no field-by-field
        # merge; changes on both sides clash as a whole.
        whole_clash = bool(local_changed) and ours_to != theirs_to
        clash = qbo_changed | local_changed if whole_clash else set()
    else:
        whole_clash = False
        both = qbo_changed & local_changed
        clash = {name for name in both if ours_to.get(name) != theirs_to.get(name)}
    keep_lines = None
    if "lines" in clash and not whole_clash:
        keep_lines = merge_lines(
            mapping.project(agreed, "to").get("lines") or [],
            ours_to.get("lines") or [],
            theirs_to.get("lines") or [],
        )
        if keep_lines is not None:
            clash.discard("lines")
    if clash and rule == SyncConfiguration.ConflictRule.HOLD:
        return Decision(Action.REFRESH_HELD if held else Action.HOLD, conflict=True)
    portal_wins = bool(clash) and rule == SyncConfiguration.ConflictRule.PORTAL_WINS
    apply = qbo_changed - clash if portal_wins else qbo_changed
    return Decision(
        Action.MERGE,
        apply=frozenset(apply),
        push_after=bool(local_changed - apply) or bool(keep_lines),
        conflict=bool(clash),
        winner=("portal" if portal_wins else "quickbooks") if clash else "",
        whole=portal_wins and whole_clash,
        keep_lines=keep_lines or frozenset(),
    )


def merge_lines(agreed: list, ours: list, theirs: list) -> frozenset[int] | None:
    """Merge two changes to an invoice's lines line by line, or say they cannot be.

    Each argument is a neutral line list (``sync.mappers.invoice``). When both sides kept the
    same lines in the same order (same count, same kind at each position) and no line was
    changed differently on both, returns the positions of the lines only the portal changed:
    the merged lines are QuickBooks' with those positions taken from the portal, so an
    accountant's discount change and a staff member's item-line edit both stand. Returns None
    when a line was added, removed or moved on either side, or one line changed on both: the
    lines then clash as a whole and the conflict rule decides.
    """
    if not len(agreed) == len(ours) == len(theirs):
        return None
    portal_only = set()
    for position, (was, mine, their) in enumerate(zip(agreed, ours, theirs, strict=True)):
        if not _line_kind(was) == _line_kind(mine) == _line_kind(their):
            return None
        if mine != was and their != was and mine != their:
            return None
        if mine != was and their == was:
            portal_only.add(position)
    return frozenset(portal_only)


def _line_kind(line: dict) -> str:
    return line.get("kind", "item")
