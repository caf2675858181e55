"""Customers: bound by name, created in QuickBooks when missing (if allowed), pulled back."""

from __future__ import annotations

from portal.models import Customer
from sync.entities.base import NameListAdapter
from sync.mappers import customer as mapper


class CustomerAdapter(NameListAdapter):
    kind = "customer"
    qbo_entity = "Customer"
    model = Customer
    name_field = "display_name"
    qbo_name_field = "DisplayName"
    name_label = "Display name"
    name_max = 500  # QuickBooks' DisplayName limit
    auto_create_setting = "auto_create_customers"

    def neutral_local(self, local: Customer) -> dict:
        return mapper.customer_neutral_local(local)

    def neutral_qbo(self, obj: dict) -> dict:
        return mapper.customer_neutral_qbo(obj)

    def body(self, local: Customer) -> dict:
        return mapper.customer_to_qbo(mapper.customer_neutral_local(local))

    def apply_remote(self, local: Customer, neutral: dict) -> None:
        # Portal fields are shorter than QuickBooks' for some values; they are cut to fit.
        local.display_name = neutral["name"]
        local.company_name = neutral["company"][:100]
        local.email = neutral["email"]
        local.phone = neutral["phone"][:30]
        local.billing_line1 = neutral["line1"]
        local.billing_city = neutral["city"]
        local.billing_region = neutral["region"]
        local.billing_postal_code = neutral["postal_code"][:31]
        local.billing_country = neutral["country"]
        local.active = neutral["active"]
        # Parents come before their sub-customers (``ordered``), so the parent is here.
        local.parent = (
            Customer.objects.filter(display_name__iexact=neutral["parent"]).first()
            if neutral.get("parent")
            else None
        )
        local.save()

    def ordered(self, objects: list[dict]) -> list[dict]:
        """Parents before their sub-customers (QuickBooks' ``Level``, 0 at the top)."""
        return sorted(objects, key=lambda obj: int(obj.get("Level") or 0))
