"""What every mapper shares: canonical numbers and money, and how a party is named.

Both sides map into the same *neutral form* (plain JSON values, only the mapped fields), so
"did this side change since both agreed?" is a dict comparison, and an echo of the sync's own
write compares equal and is ignored.
"""

from __future__ import annotations

import re
from decimal import Decimal

from portal.money import round_money

# Quantities and unit prices: QuickBooks keeps seven places (qbo-api.md section 13).
QUANTITY_PLACES = Decimal("0.0000001")


# QuickBooks renames a customer or item it makes inactive ("deleted" in its screens) by adding
# " (deleted)" (qbo-api.md section 3), and " (deleted-1)" and so on for a second one of that
# name (numbering UNCONFIRMED); the portal keeps the record under its own name.
DELETED_SUFFIX = re.compile(r" \(deleted(?:-\d+)?\)$")


def active_name(obj: dict, field: str) -> str:
    """A name-list entry's name without the suffix QuickBooks adds when it is made
    inactive."""
    name = obj.get(field, "") or ""
    if obj.get("Active") is False:
        return DELETED_SUFFIX.sub("", name)
    return name


def number(value) -> str:
    """A decimal as a canonical string ("3", "0.335", "150"), whatever its source type."""
    if value is None or value == "":
        return "0"
    d = Decimal(str(value)).quantize(QUANTITY_PLACES).normalize()
    text = format(d, "f")
    return "0" if text in ("-0", "") else text


def optional_number(value) -> str | None:
    """``number()``, or None where there is no value (an amount-only line's quantity)."""
    return None if value is None or value == "" else number(value)


def money(value) -> str:
    return format(round_money(Decimal(str(value or 0))), "f")


def party(qbo_id: str | None, name: str) -> str:
    """A customer or item in the neutral form: by QuickBooks id once bound, else by name."""
    return f"qbo:{qbo_id}" if qbo_id else f"name:{name}"


def ref(value: dict | None) -> str:
    """The neutral party for a QuickBooks reference ``{"value": id, "name": ...}``."""
    return party(str(value.get("value")), "") if value else ""
