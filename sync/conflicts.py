"""Conflicts: what to do with an invoice when QuickBooks' version differs from the agreed one.

A pure decision from three neutral forms (ours, theirs and what both last agreed on), the field
mapping and the configured rule; no I/O. The importer carries the decision out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sync.mappers.invoice import InvoiceMapping
from sync.models import SyncConfiguration


class Action(StrEnum):
    # Only QuickBooks' SyncToken moved (a payment, our own echo): take the new token.
    TAKE_TOKEN = "take_token"
    # Write QuickBooks' version into the portal.
    APPLY_THEIRS = "apply_theirs"
    # Both changed and the portal wins: send ours over QuickBooks' newer version.
    PUSH_OURS = "push_ours"
    # Both changed: keep both versions for staff to choose.
    HOLD = "hold"
    # Already held for review: keep both versions current, count it once.
    REFRESH_HELD = "refresh_held"


@dataclass(frozen=True)
class Decision:
    action: Action
    # TAKE_TOKEN: the portal changed meanwhile, so its change is sent after taking the token.
    push_after: bool = False
    # Both sides changed (the event says which side the rule kept).
    conflict: bool = False


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
    qbo_changed = mapping.project(theirs, "from") != mapping.project(agreed, "from")
    ours_sent = mapping.project(ours, "to")
    local_changed = ours_sent != mapping.project(agreed, "to")
    if not qbo_changed:
        return Decision(Action.TAKE_TOKEN, push_after=local_changed and not held)
    if local_changed and ours_sent != mapping.project(theirs, "to"):
        if rule == SyncConfiguration.ConflictRule.PORTAL_WINS:
            return Decision(Action.PUSH_OURS, conflict=True)
        if rule == SyncConfiguration.ConflictRule.HOLD:
            return Decision(Action.REFRESH_HELD if held else Action.HOLD, conflict=True)
        return Decision(Action.APPLY_THEIRS, conflict=True)
    return Decision(Action.APPLY_THEIRS)
