"""Customer mappers: a portal customer and a QuickBooks Customer to the neutral form, and
the neutral form to a QuickBooks Customer body (qbo-api.md section 8, Customer)."""

from __future__ import annotations

from sync.mappers.common import active_name


def customer_neutral_local(customer) -> dict:
    return {
        "name": customer.display_name,
        "company": customer.company_name,
        "email": customer.email,
        "phone": customer.phone,
        "line1": customer.billing_line1,
        "city": customer.billing_city,
        "region": customer.billing_region,
        "postal_code": customer.billing_postal_code,
        "country": customer.billing_country,
        "active": customer.active,
        "parent": customer.parent.display_name if customer.parent_id else "",
    }


def parent_name(obj: dict) -> str:
    """A sub-customer's parent's DisplayName, from its ``FullyQualifiedName`` ("Parent:Child";
    QuickBooks refuses a colon in a name, so the last part before the child is the parent)."""
    if not obj.get("ParentRef"):
        return ""
    parts = str(obj.get("FullyQualifiedName") or "").split(":")
    if len(parts) >= 2:
        return parts[-2]
    return str((obj.get("ParentRef") or {}).get("name") or "")


def customer_neutral_qbo(obj: dict) -> dict:
    addr = obj.get("BillAddr") or {}
    return {
        "name": active_name(obj, "DisplayName"),
        "company": obj.get("CompanyName", "") or "",
        "email": (obj.get("PrimaryEmailAddr") or {}).get("Address", ""),
        "phone": (obj.get("PrimaryPhone") or {}).get("FreeFormNumber", ""),
        "line1": addr.get("Line1", ""),
        "city": addr.get("City", ""),
        "region": addr.get("CountrySubDivisionCode", ""),
        "postal_code": addr.get("PostalCode", ""),
        "country": addr.get("Country", ""),
        "active": obj.get("Active", True) is not False,
        "parent": parent_name(obj),
    }


def customer_to_qbo(neutral: dict) -> dict:
    body: dict = {"DisplayName": neutral["name"], "Active": neutral["active"]}
    if neutral["company"]:
        body["CompanyName"] = neutral["company"]
    if neutral["email"]:
        body["PrimaryEmailAddr"] = {"Address": neutral["email"]}
    if neutral["phone"]:
        body["PrimaryPhone"] = {"FreeFormNumber": neutral["phone"]}
    addr = {
        "Line1": neutral["line1"],
        "City": neutral["city"],
        "CountrySubDivisionCode": neutral["region"],
        "PostalCode": neutral["postal_code"],
        "Country": neutral["country"],
    }
    addr = {k: v for k, v in addr.items() if v}
    if addr:
        body["BillAddr"] = addr
    return body
