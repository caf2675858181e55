"""The invoice field mapping refuses leaving a required field unmapped, naming it, and
Restore defaults puts every row back."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.roles import AUDITORS, BILLING_STAFF, SYNC_ADMINISTRATORS
from sync.configuration import field_mappings_current
from sync.fieldmap import LOCAL_FIELDS
from sync.models import FieldMapping


def _post(**overrides):
    data = {}
    for field in LOCAL_FIELDS:
        data[f"map-{field.name}-qbo"] = field.default
        data[f"map-{field.name}-direction"] = "both"
    data.update(overrides)
    return data


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (
            "number",
            "Invoice number must be mapped to a QuickBooks field: both sides recognise an "
            "invoice by its number, and without it QuickBooks would number portal invoices "
            "itself. Its default is Invoice no. (DocNumber).",
        ),
        (
            "issue_date",
            "Issue date must be mapped to a QuickBooks field: without it QuickBooks would date "
            "every invoice the day it is sent. Its default is Invoice date (TxnDate).",
        ),
        (
            "customer",
            "Customer must stay mapped to Customer (CustomerRef).",
        ),
    ],
)
def test_unmapping_a_required_field_is_refused_naming_it(client, login, connection, field, message):
    login(SYNC_ADMINISTRATORS)
    response = client.post(
        reverse("admin:quickbooks_field_mapping"), _post(**{f"map-{field}-qbo": ""})
    )

    if field == "customer":
        # Customer is fixed: the form always sends its default, so only a forged post could
        # leave it out, and the service refuses that too.
        assert response.status_code == 302
        from django.core.exceptions import ValidationError

        from sync.configuration import field_mappings_save

        rows = {f.name: (f.default, "both") for f in LOCAL_FIELDS}
        rows["customer"] = ("", "both")
        with pytest.raises(ValidationError) as refused:
            field_mappings_save(connection=connection, rows=rows)
        assert refused.value.message_dict == {"customer": [message]}
        return
    assert response.status_code == 400
    assert _messages(response) == [message]
    page = response.content.decode()
    assert f'id="map-error-{field}"' in page
    assert not FieldMapping.objects.exists()


def test_required_fields_are_marked_and_offer_no_not_mapped_choice(client, login, connection):
    login(SYNC_ADMINISTRATORS)
    page = client.get(reverse("admin:quickbooks"), {"tab": "mapping", "sub": "invoices"})
    text = page.content.decode()
    number_select = text.split('id="id_map-number-qbo"')[1].split("</select>")[0]
    assert "Not mapped" not in number_select
    memo_select = text.split('id="id_map-customer_memo-qbo"')[1].split("</select>")[0]
    assert "Not mapped" in memo_select
    assert 'Invoice number</label> <span class="ll-required-mark">required</span>' in text
    assert 'id="qbo-restore-mapping"' in text


def test_restore_defaults_puts_every_row_back(client, login, connection):
    login(SYNC_ADMINISTRATORS)
    client.post(
        reverse("admin:quickbooks_field_mapping"),
        _post(**{"map-customer_memo-qbo": "", "map-private_note-direction": "to_qbo"}),
        follow=True,
    )
    assert field_mappings_current(connection=connection)["customer_memo"] == ("", "both")

    response = client.post(reverse("admin:quickbooks_field_mapping_defaults"), follow=True)

    assert _messages(response) == ["Invoice field mapping restored to the defaults."]
    assert not FieldMapping.objects.exists()
    current = field_mappings_current(connection=connection)
    assert current == {f.name: (f.default, "both") for f in LOCAL_FIELDS}
    assert '<option value="CustomerMemo" selected>' in response.content.decode()


@pytest.mark.parametrize("role", [BILLING_STAFF, AUDITORS])
def test_restore_defaults_is_for_sync_administrators_only(client, login, connection, role):
    FieldMapping.objects.create(connection=connection, local_field="customer_memo", qbo_field="")
    login(role)
    assert client.post(reverse("admin:quickbooks_field_mapping_defaults")).status_code == 403
    page = client.get(reverse("admin:quickbooks"), {"tab": "mapping", "sub": "invoices"})
    assert 'id="qbo-restore-mapping"' not in page.content.decode()
    assert FieldMapping.objects.count() == 1
