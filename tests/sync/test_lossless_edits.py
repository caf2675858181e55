"""Invoices made in QuickBooks, edited in the admin, in QuickBooks or on both sides: the
books change only where someone changed them.

Each scenario checks QuickBooks' TotalAmt, TotalTax and untouched lines, the write requests
the emulator received, and that the portal's totals are QuickBooks'.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from portal.models import Invoice, InvoiceLine
from portal.roles import BILLING_STAFF
from sync.models import SyncConfiguration, SyncEvent, SyncRecord
from tests.sync.shapes import (
    _bundle,
    _discount,
    _euro_customer,
    _euro_invoice,
    _lines,
    _make_in_qbo,
    _money,
    _sale,
    _tax,
    _text,
    _totals,
    _writes,
)


def _portal_matches(invoice, obj):
    invoice.refresh_from_db()
    total, tax = _totals(obj)
    return (invoice.total, invoice.tax_total) == (total, tax)


def _pulled(run_sync, qbo_ui, doc, lines, **extra):
    assert run_sync("pull").status == "done"
    made = _make_in_qbo(qbo_ui, doc, lines, **extra)
    run = run_sync("pull")
    assert run.status == "done", run.message
    record = SyncRecord.objects.get(qbo_id=made["Id"], object_type="invoice")
    return record.invoice, made, record


def _rich(qbo_ui, *, taxed=False, percent=10, described=False):
    """Item + discount + bundle + description lines, as in the brief. ``described``: every
    item line has a Description (the Design line has none otherwise)."""
    lines = [
        _sale(qbo_ui, "Hours", 100, 2, 50, taxable=taxed, description="Consulting"),
        _text("Phase two"),
        _bundle(qbo_ui, taxable=taxed),
        _sale(
            qbo_ui, "Design", 150, 2, 75, taxable=taxed, description="Plans" if described else ""
        ),
        _discount(qbo_ui, percent=percent),
    ]
    extra = {"TxnTaxDetail": _tax(qbo_ui)} if taxed else {}
    return lines, extra


@pytest.fixture
def sent(monkeypatch):
    """Every body the sync sends to QuickBooks: [(operation, body)]."""
    from integrations.quickbooks.backend import QuickBooksBackend

    bodies: list[tuple[str, dict]] = []
    real_batch, real_update = QuickBooksBackend.write_batch, QuickBooksBackend.update

    def write_batch(self, entity, writes, *a, **kw):
        bodies.extend((f"{entity}:{op}", body) for op, body in writes)
        return real_batch(self, entity, writes, *a, **kw)

    def update(self, entity, body, *a, **kw):
        bodies.append((f"{entity}:update", body))
        return real_update(self, entity, body, *a, **kw)

    monkeypatch.setattr(QuickBooksBackend, "write_batch", write_batch)
    monkeypatch.setattr(QuickBooksBackend, "update", update)
    return bodies


def _amounts(obj):
    return [
        _money(x.get("Amount", 0)) for x in obj["Line"] if x["DetailType"] != "SubTotalLineDetail"
    ]


# --- the admin form -------------------------------------------------------------------------


@pytest.fixture
def no_queue(monkeypatch):
    calls = []
    monkeypatch.setattr("sync.tasks.queue", lambda func, *a, **kw: calls.append((func, *a)))
    return calls


@pytest.fixture
def staff(client, user_factory, no_queue):
    client.force_login(user_factory(role=BILLING_STAFF))
    return client


def _value(bound):
    value = bound.value()
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bool):
        return "on" if value else None
    if hasattr(value, "pk"):
        return value.pk
    return value


def _form_fields(form, data):
    for name in form.fields:
        bound = form[name]
        value = _value(bound)
        if value is None:
            continue
        data[bound.html_name] = value
        if form.fields[name].show_hidden_initial:
            # Fields with a callable default also post their initial value (hidden input).
            data[bound.html_initial_name] = value


def admin_post_data(client, invoice):
    """What the browser would post back for the invoice's change page, unchanged."""
    url = reverse("admin:portal_invoice_change", args=[invoice.pk])
    page = client.get(url)
    assert page.status_code == 200
    data = {}
    _form_fields(page.context["adminform"].form, data)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        _form_fields(formset.management_form, data)
        for form in formset.forms:
            _form_fields(form, data)
    return url, data


def line_prefix(data, line):
    """The form prefix ("lines-N") of the existing line ``line``."""
    for key, value in data.items():
        if key.startswith("lines-") and key.endswith("-id") and str(value) == str(line.pk):
            return key[: -len("-id")]
    raise AssertionError(f"line {line.pk} not on the form")


def admin_save(client, url, data):
    response = client.post(url, data)
    return response


def _errors(response):
    if response.status_code == 302:
        return None
    ctx = response.context
    errs = [ctx["adminform"].form.errors]
    for inline in ctx["inline_admin_formsets"]:
        errs.append(inline.formset.non_form_errors())
        errs.append([f.errors for f in inline.formset.forms])
    return errs


# =============================================================================================
# 1. Edits through the real admin form on a pulled rich invoice
# =============================================================================================


def _after_push_checks(qbo, qbo_ui, made, invoice, *, edited_ids=()):
    after = qbo_ui.find("Invoice", Id=made["Id"])
    before_lines, after_lines = _lines(made), _lines(after)
    for line_id, line in before_lines.items():
        if line_id in edited_ids or line["DetailType"] == "SubTotalLineDetail":
            continue
        if line["DetailType"] == "DiscountLineDetail":
            # A percent discount's amount follows the subtotal; what it says must not change.
            assert {k: v for k, v in after_lines[line_id].items() if k != "Amount"} == {
                k: v for k, v in line.items() if k != "Amount"
            }
            continue
        assert after_lines.get(line_id) == line, f"line {line_id} changed"
    assert _portal_matches(invoice, after), (
        (invoice.total, invoice.tax_total),
        _totals(after),
    )
    return after


def test_admin_save_without_changes_writes_nothing(staff, run_sync, qbo_ui, qbo, sent):
    lines, extra = _rich(qbo_ui, taxed=True)
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8001", lines, **extra)
    url, data = admin_post_data(staff, invoice)
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    qbo.app.clear_log()
    assert run_sync("both").status == "done"
    assert sent == [], __import__("json").dumps(sent, indent=1, default=str)
    assert _writes(qbo) == []
    assert qbo_ui.find("Invoice", Id=made["Id"])["SyncToken"] == made["SyncToken"]
    # The portal's totals are still QuickBooks' (after the save and after the sync).
    assert _portal_matches(invoice, made), (invoice.total, invoice.tax_total, _totals(made))


def test_admin_save_without_changes_keeps_qbo_totals(staff, run_sync, qbo_ui, qbo, sent):
    """Every item line has a description here, so only the totals question is tested."""
    lines, extra = _rich(qbo_ui, taxed=True, described=True)
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8011", lines, **extra)
    assert _portal_matches(invoice, made)
    url, data = admin_post_data(staff, invoice)
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    run_sync("both")
    assert sent == []
    assert _portal_matches(invoice, made), (
        "portal (total, tax)",
        (invoice.total, invoice.tax_total),
        "QBO",
        _totals(made),
    )


def test_admin_memo_edit_sends_only_the_memo(staff, run_sync, qbo_ui, qbo):
    lines, extra = _rich(qbo_ui, taxed=True, described=True)
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8002", lines, **extra)
    url, data = admin_post_data(staff, invoice)
    data["customer_memo"] = "Thanks!"
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    qbo.app.clear_log()
    assert run_sync("push").updated == 1
    writes = _writes(qbo)
    assert len(writes) == 1
    after = _after_push_checks(qbo, qbo_ui, made, invoice)
    assert after["CustomerMemo"]["value"] == "Thanks!"
    assert _totals(after) == _totals(made)
    assert _lines(after) == _lines(made)


def test_admin_quantity_edit_keeps_other_lines_and_matches_qbo(staff, run_sync, qbo_ui, qbo):
    lines, extra = _rich(qbo_ui, taxed=True)
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8003", lines, **extra)
    design = invoice.lines.get(kind="item", item__name="Design")
    url, data = admin_post_data(staff, invoice)
    data[f"{line_prefix(data, design)}-quantity"] = "3"
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    design.refresh_from_db()
    assert (design.quantity, design.unit_price, design.amount) == (
        Decimal("3"),
        Decimal("75"),
        Decimal("225.00"),
    )
    qbo.app.clear_log()
    assert run_sync("push").updated == 1
    after = _after_push_checks(qbo, qbo_ui, made, invoice, edited_ids={design.qbo_line_id})
    edited = _lines(after)[design.qbo_line_id]
    assert edited["SalesItemLineDetail"]["Qty"] == 3
    # Every portal line's amount is QuickBooks' amount for that line (the percent discount
    # follows the new subtotal in QuickBooks).
    qbo_amounts = {
        line["Id"]: _money(line.get("Amount", 0))
        for line in after["Line"]
        if line["DetailType"] != "SubTotalLineDetail"
    }
    portal_amounts = {line.qbo_line_id: line.amount for line in invoice.lines.all()}
    assert portal_amounts == qbo_amounts
    # Converged.
    qbo.app.clear_log()
    assert run_sync("both").status == "done"
    assert _writes(qbo) == []


def test_admin_new_item_line_is_added_and_others_kept(staff, run_sync, qbo_ui, qbo):
    from portal.models import Item

    lines, extra = _rich(qbo_ui, taxed=True, described=True)
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8004", lines, **extra)
    url, data = admin_post_data(staff, invoice)
    total = int(data["lines-TOTAL_FORMS"])
    new = f"lines-{total - 1}"  # the extra empty form
    gardening = Item.objects.get(name="Design")
    data.update(
        {
            f"{new}-item": gardening.pk,
            f"{new}-description": "Extra design",
            f"{new}-quantity": "1",
            f"{new}-unit_price": "40",
            f"{new}-tax_rate": "",
        }
    )
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    assert invoice.lines.count() == 6
    qbo.app.clear_log()
    assert run_sync("push").updated == 1
    after = _after_push_checks(qbo, qbo_ui, made, invoice)
    assert len([x for x in after["Line"] if x["DetailType"] != "SubTotalLineDetail"]) == 6
    portal_amounts = [line.amount for line in invoice.lines.all()]
    qbo_amounts = _amounts(after)
    assert portal_amounts == qbo_amounts
    qbo.app.clear_log()
    assert run_sync("both").status == "done"
    assert _writes(qbo) == []


def test_admin_deleting_a_discount_line_is_refused(staff, run_sync, qbo_ui, qbo):
    lines, extra = _rich(qbo_ui, taxed=True)
    invoice, _made, _record = _pulled(run_sync, qbo_ui, "8005", lines, **extra)
    discount = invoice.lines.get(kind="discount")
    url, data = admin_post_data(staff, invoice)
    data[f"{line_prefix(data, discount)}-DELETE"] = "on"
    response = admin_save(staff, url, data)
    assert response.status_code == 200
    page = response.content.decode()
    assert "The discount line comes from QuickBooks" in page
    assert invoice.lines.filter(kind="discount").exists()
    qbo.app.clear_log()
    run_sync("both")
    assert _writes(qbo) == []


def test_admin_cannot_edit_a_bundle_line_by_posting_values(staff, run_sync, qbo_ui, qbo):
    lines, extra = _rich(qbo_ui, taxed=False, described=True)
    invoice, _made, _record = _pulled(run_sync, qbo_ui, "8006", lines, **extra)
    bundle = invoice.lines.get(kind="bundle")
    text = invoice.lines.get(kind="description")
    url, data = admin_post_data(staff, invoice)
    data[f"{line_prefix(data, bundle)}-description"] = "hacked"
    data[f"{line_prefix(data, bundle)}-quantity"] = "9"
    data[f"{line_prefix(data, text)}-description"] = "hacked"
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    bundle.refresh_from_db()
    text.refresh_from_db()
    assert bundle.description == "Garden design package"
    assert text.description == "Phase two"
    qbo.app.clear_log()
    run_sync("both")
    assert _writes(qbo) == []


def test_admin_deleting_an_item_line_keeps_the_kept_lines(staff, run_sync, qbo_ui, qbo):
    lines, extra = _rich(qbo_ui, taxed=True)
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8007", lines, **extra)
    design = invoice.lines.get(kind="item", item__name="Design")
    url, data = admin_post_data(staff, invoice)
    data[f"{line_prefix(data, design)}-DELETE"] = "on"
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    assert run_sync("push").updated == 1
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert design.qbo_line_id not in _lines(after)
    for kind in ("DescriptionOnly", "GroupLineDetail", "DiscountLineDetail"):
        assert any(x["DetailType"] == kind for x in after["Line"])
    assert _portal_matches(invoice, after)
    portal_amounts = [line.amount for line in invoice.lines.all()]
    qbo_amounts = _amounts(after)
    assert portal_amounts == qbo_amounts


# =============================================================================================
# 2. QuickBooks-side edits after a pull
# =============================================================================================


def _qbo_edit(qbo_ui, made_id, mutate, **fields):
    """Edit the invoice as an accountant in QBO: full Line array with the lines' Ids."""
    current = qbo_ui.find("Invoice", Id=made_id)
    lines = [x for x in current["Line"] if x["DetailType"] != "SubTotalLineDetail"]
    lines = mutate(lines)
    return qbo_ui.update("Invoice", {"Id": made_id, "Line": lines, **fields})


def _reorder(lines):
    return list(reversed(lines))


def _describe_line(line_id, words):
    """An accountant's edit of one line's description."""

    def mutate(lines):
        for x in lines:
            if x.get("Id") == line_id:
                x["Description"] = words
        return lines

    return mutate


def _discount_to_25(lines):
    for x in lines:
        if x["DetailType"] == "DiscountLineDetail":
            x["DiscountLineDetail"]["DiscountPercent"] = 25
    return lines


def _drop_text(lines):
    return [x for x in lines if x["DetailType"] != "DescriptionOnly"]


def _edit_bundle(lines):
    for x in lines:
        if x["DetailType"] == "GroupLineDetail":
            x["Description"] = "Bigger package"
            part = x["GroupLineDetail"]["Line"][1]
            part["SalesItemLineDetail"]["Qty"] = 5
            part["Amount"] = 75
    return lines


@pytest.mark.parametrize(
    "mutate", [_reorder, _discount_to_25, _drop_text, _edit_bundle], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("taxed", [False, True], ids=["untaxed", "taxed"])
def test_qbo_side_edit_then_pull_then_push(mutate, taxed, run_sync, qbo_ui, qbo, sent):
    lines, extra = _rich(qbo_ui, taxed=taxed)
    invoice, made, record = _pulled(run_sync, qbo_ui, "8100", lines, **extra)
    edited = _qbo_edit(qbo_ui, made["Id"], mutate)
    assert run_sync("pull").status == "done"
    record.refresh_from_db()
    assert record.status == "synced", record.details
    assert _portal_matches(invoice, edited), ((invoice.total, invoice.tax_total), _totals(edited))
    kept = [x for x in edited["Line"] if x["DetailType"] != "SubTotalLineDetail"]
    assert [line.amount for line in invoice.lines.all()] == _amounts(edited)
    assert [line.qbo_line_id for line in invoice.lines.all()] == [x["Id"] for x in kept]
    # (a) push with no portal edit writes nothing.
    qbo.app.clear_log()
    for direction in ("push", "both"):
        assert run_sync(direction).status == "done"
    assert sent == [] and _writes(qbo) == []
    # (b) a portal memo edit writes only the memo.
    Invoice.objects.filter(pk=invoice.pk).update(customer_memo="After the accountant")
    assert run_sync("push").updated == 1
    assert [set(body) - {"Id", "SyncToken"} for _op, body in sent] == [{"CustomerMemo"}]
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert _lines(after) == _lines(edited)
    assert _totals(after) == _totals(edited)
    assert _portal_matches(invoice, after)


# =============================================================================================
# 3. Conflicts: the portal changes an item line, the accountant the discount
# =============================================================================================


def _set_rule(ready, rule):
    SyncConfiguration.objects.filter(connection=ready).update(conflict_rule=rule)


@pytest.mark.parametrize("rule", ["hold", "qbo_wins", "portal_wins"])
def test_conflict_portal_line_vs_qbo_discount(rule, ready, run_sync, qbo_ui, qbo, sent):
    """The portal edits an item line, the accountant the discount line: different lines, so
    they merge line by line whatever the rule. Both edits stand in QuickBooks and the portal,
    and the totals agree to the cent."""
    lines, extra = _rich(qbo_ui, taxed=True)
    invoice, made, record = _pulled(run_sync, qbo_ui, "8200", lines, **extra)
    _set_rule(ready, rule)
    line = invoice.lines.get(kind="item", item__name="Hours")
    line.description = "Edited in the portal"
    line.save()
    theirs = _qbo_edit(qbo_ui, made["Id"], _discount_to_25)
    run = run_sync("both")
    assert run.status == "done", run.message
    record.refresh_from_db()
    assert record.status == "synced", (rule, record.status, record.details)
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert int(after["SyncToken"]) == int(theirs["SyncToken"]) + 1
    discount = next(x for x in after["Line"] if x["DetailType"] == "DiscountLineDetail")
    assert discount["DiscountLineDetail"]["DiscountPercent"] == 25, (rule, discount)
    assert _lines(after)[line.qbo_line_id]["Description"] == "Edited in the portal"
    # Every other line is as the accountant left it.
    for line_id, was in _lines(theirs).items():
        if line_id != line.qbo_line_id and was["DetailType"] != "DiscountLineDetail":
            assert _lines(after)[line_id] == was, line_id
    invoice.refresh_from_db()
    assert _portal_matches(invoice, after), ((invoice.total,), _totals(after))
    assert invoice.lines.get(qbo_line_id=line.qbo_line_id).description == "Edited in the portal"


def _one_line_on_both_sides(ready, run_sync, qbo_ui, number, rule, ours, theirs):
    """A pulled rich invoice whose Hours line staff describe as ``ours`` and the accountant
    as ``theirs``, then synced under ``rule``. Returns (invoice, made, record, line,
    QuickBooks' version after the accountant's edit)."""
    lines, extra = _rich(qbo_ui, taxed=True)
    invoice, made, record = _pulled(run_sync, qbo_ui, number, lines, **extra)
    _set_rule(ready, rule)
    line = invoice.lines.get(kind="item", item__name="Hours")
    line.description = ours
    line.save()
    edited = _qbo_edit(qbo_ui, made["Id"], _describe_line(line.qbo_line_id, theirs))
    run = run_sync("both")
    assert run.status == "done", run.message
    record.refresh_from_db()
    return invoice, made, record, line, edited


@pytest.mark.parametrize("rule", ["hold", "qbo_wins", "portal_wins"])
def test_conflict_same_line_edited_on_both_sides_follows_the_rule(
    rule, ready, run_sync, qbo_ui, qbo, sent
):
    invoice, made, record, line, theirs = _one_line_on_both_sides(
        ready, run_sync, qbo_ui, "8205", rule, "Portal words", "QuickBooks words"
    )
    after = qbo_ui.find("Invoice", Id=made["Id"])
    words = _lines(after)[line.qbo_line_id]["Description"]
    local = invoice.lines.get(qbo_line_id=line.qbo_line_id).description
    if rule == "hold":
        assert record.status == "conflict"
        assert after["SyncToken"] == theirs["SyncToken"]
        assert (words, local) == ("QuickBooks words", "Portal words")
    elif rule == "qbo_wins":
        assert record.status == "synced", record.details
        assert (words, local) == ("QuickBooks words", "QuickBooks words")
    else:
        assert record.status == "synced", record.details
        assert (words, local) == ("Portal words", "Portal words")


@pytest.mark.parametrize("rule", ["hold", "qbo_wins", "portal_wins"])
def test_conflict_portal_memo_vs_qbo_discount(rule, ready, run_sync, qbo_ui, qbo, sent):
    """Different fields changed on each side: nothing should be lost either way."""
    lines, extra = _rich(qbo_ui, taxed=True)
    invoice, made, record = _pulled(run_sync, qbo_ui, "8210", lines, **extra)
    _set_rule(ready, rule)
    Invoice.objects.filter(pk=invoice.pk).update(customer_memo="Portal memo")
    _qbo_edit(qbo_ui, made["Id"], _discount_to_25)
    run = run_sync("both")
    assert run.status == "done", run.message
    record.refresh_from_db()
    invoice.refresh_from_db()
    after = qbo_ui.find("Invoice", Id=made["Id"])
    discount = next(x for x in after["Line"] if x["DetailType"] == "DiscountLineDetail")
    assert discount["DiscountLineDetail"]["DiscountPercent"] == 25, (rule, record.status)
    if rule != "hold":
        assert invoice.customer_memo == "Portal memo", (rule, record.status)


def test_conflict_held_then_keep_portal(ready, run_sync, qbo_ui, qbo, sent):
    from sync.services import conflict_resolve

    invoice, made, record, line, _theirs = _one_line_on_both_sides(
        ready, run_sync, qbo_ui, "8220", "hold", "Edited in the portal", "Edited in QuickBooks"
    )
    assert record.status == "conflict"
    conflict_resolve(record=record, keep="portal")
    record.refresh_from_db()
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert record.status == "synced", record.details
    assert _lines(after)[line.qbo_line_id]["Description"] == "Edited in the portal"
    assert _portal_matches(invoice, after)
    portal_amounts = [x.amount for x in invoice.lines.all()]
    assert portal_amounts == _amounts(after)


def test_conflict_held_then_keep_quickbooks(ready, run_sync, qbo_ui, qbo, sent):
    from sync.services import conflict_resolve

    invoice, _made, record, _line, theirs = _one_line_on_both_sides(
        ready, run_sync, qbo_ui, "8230", "hold", "Edited in the portal", "Edited in QuickBooks"
    )
    assert record.status == "conflict"
    qbo.app.clear_log()
    sent.clear()
    conflict_resolve(record=record, keep="quickbooks")
    record.refresh_from_db()
    assert record.status == "synced", record.details
    assert _writes(qbo) == []
    assert _portal_matches(invoice, theirs)
    run_sync("both")
    assert sent == [] and _writes(qbo) == []


# =============================================================================================
# 4. Amount-only lines through the admin
# =============================================================================================


def test_admin_quantity_on_amount_only_line_keeps_amount(staff, run_sync, qbo_ui, qbo, sent):
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8300", [_sale(qbo_ui, "Hours", 250)])
    line = invoice.lines.get()
    assert (line.quantity, line.unit_price, line.amount) == (None, None, Decimal("250.00"))
    url, data = admin_post_data(staff, invoice)
    data[f"{line_prefix(data, line)}-quantity"] = "2"
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    line.refresh_from_db()
    assert run_sync("push").status == "done"
    after = qbo_ui.find("Invoice", Id=made["Id"])
    # Giving the line a quantity must not change what it charges, in either place. The rate
    # follows from the amount (InvoiceLine.save docstring / qbo-api.md section 13).
    assert (_totals(after), line.quantity, line.unit_price, line.amount) == (
        _totals(made),
        Decimal("2"),
        Decimal("125"),
        Decimal("250.00"),
    )


def test_admin_quantity_on_amount_only_line_with_odd_split(staff, run_sync, qbo_ui, qbo, sent):
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8301", [_sale(qbo_ui, "Services", 100)])
    line = invoice.lines.get()
    # Make the amount-only path reachable: give the item a price so the form has one to use.
    url, data = admin_post_data(staff, invoice)
    data[f"{line_prefix(data, line)}-quantity"] = "3"
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    line.refresh_from_db()
    assert line.amount == Decimal("100.00"), (line.quantity, line.unit_price, line.amount)
    assert run_sync("push").status == "done"
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "synced", record.details
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert _totals(after) == _totals(made)


def test_admin_clearing_quantity_and_price_makes_amount_only(staff, run_sync, qbo_ui, qbo, sent):
    invoice, made, _record = _pulled(
        run_sync, qbo_ui, "8302", [_sale(qbo_ui, "Design", 150, 2, 75)]
    )
    line = invoice.lines.get()
    url, data = admin_post_data(staff, invoice)
    prefix = line_prefix(data, line)
    data[f"{prefix}-quantity"] = ""
    data[f"{prefix}-unit_price"] = ""
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    line.refresh_from_db()
    assert (line.quantity, line.unit_price, line.amount) == (None, None, Decimal("150.00"))
    assert run_sync("push").status == "done"
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "synced", record.details
    after = qbo_ui.find("Invoice", Id=made["Id"])
    detail = after["Line"][0]["SalesItemLineDetail"]
    assert "Qty" not in detail and "UnitPrice" not in detail, detail
    assert _totals(after) == _totals(made)
    assert _portal_matches(invoice, after)


def test_admin_new_line_without_quantity(staff, run_sync, qbo_ui, qbo, sent):
    """A brand-new line with the quantity cleared and no price: not an amount-only line
    (nothing gives an amount), so it should be refused or priced, never a silent 0."""
    from portal.models import Item

    invoice, _made, _record = _pulled(
        run_sync, qbo_ui, "8303", [_sale(qbo_ui, "Design", 150, 2, 75)]
    )
    url, data = admin_post_data(staff, invoice)
    new = f"lines-{int(data['lines-TOTAL_FORMS']) - 1}"
    data.update(
        {
            f"{new}-item": Item.objects.get(name="Design").pk,
            f"{new}-quantity": "",
            f"{new}-unit_price": "",
        }
    )
    response = admin_save(staff, url, data)
    if response.status_code == 302:
        new_line = invoice.lines.order_by("-position").first()
        assert new_line.amount != 0, (new_line.quantity, new_line.unit_price, new_line.amount)


# =============================================================================================
# 5. Tax: discounts before/after tax, taxable bundles
# =============================================================================================


@pytest.mark.parametrize("after_discount", [True, False])
@pytest.mark.parametrize("percent", [10, 12.5])
def test_tax_with_percent_discount(after_discount, percent, run_sync, qbo_ui, qbo, sent):
    lines = [
        _sale(qbo_ui, "Hours", 200, 4, 50, taxable=True),
        _sale(qbo_ui, "Design", 75, 1, 75),
        _discount(qbo_ui, percent=percent),
    ]
    invoice, made, record = _pulled(
        run_sync,
        qbo_ui,
        "8400",
        lines,
        TxnTaxDetail=_tax(qbo_ui),
        ApplyTaxAfterDiscount=after_discount,
    )
    assert record.status == "synced", record.details
    assert _portal_matches(invoice, made)
    qbo.app.clear_log()
    run_sync("both")
    assert sent == []
    # A quantity edit in the portal: QuickBooks recomputes; the portal takes its totals.
    line = invoice.lines.get(kind="item", item__name="Hours")
    line.quantity = Decimal("5")
    line.save()
    assert run_sync("push").updated == 1
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert after["ApplyTaxAfterDiscount"] is after_discount
    record.refresh_from_db()
    assert record.status == "synced", record.details
    assert _portal_matches(invoice, after)
    assert [x.amount for x in invoice.lines.all()] == _amounts(after)
    sent.clear()
    run_sync("both")
    assert sent == []


def test_taxable_bundle_only(run_sync, qbo_ui, qbo, sent):
    lines = [_bundle(qbo_ui, taxable=True), _sale(qbo_ui, "Hours", 30, 2, 15)]
    invoice, made, record = _pulled(run_sync, qbo_ui, "8410", lines, TxnTaxDetail=_tax(qbo_ui))
    assert _totals(made)[1] == Decimal("9.60")
    assert record.status == "synced", record.details
    assert _portal_matches(invoice, made)
    run_sync("both")
    assert sent == []
    # Edit the untaxed item line: the bundle's tax must stay.
    line = invoice.lines.get(kind="item")
    line.quantity = Decimal("3")
    line.save()
    assert run_sync("push").updated == 1
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert _totals(after)[1] == Decimal("9.60"), after.get("TxnTaxDetail")
    assert _portal_matches(invoice, after)


def test_taxable_bundle_with_another_rate_is_flagged(ready, run_sync, qbo_ui, qbo):
    """A taxable bundle only, taxed by QBO at Tucson (7.6%) while the portal maps 0.5%."""
    from tests.sync.test_lossless import _map_tucson

    _map_tucson(ready, "0.5")
    lines = [_bundle(qbo_ui, taxable=True), _sale(qbo_ui, "Hours", 30, 2, 15, taxable=True)]
    invoice, made, record = _pulled(
        run_sync, qbo_ui, "8420", lines, TxnTaxDetail=_tax(qbo_ui, "Tucson")
    )
    assert record.status == "differs", (record.status, record.details)
    assert _portal_matches(invoice, made)


# =============================================================================================
# 6. Void / delete in QuickBooks
# =============================================================================================


def test_void_in_qbo_of_rich_invoice(run_sync, qbo_ui, qbo, sent):
    lines, extra = _rich(qbo_ui, taxed=True)
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8500", lines, **extra)
    kept_before = list(invoice.lines.values_list("kind", "amount", "qbo_line_id"))
    qbo_ui.void("Invoice", made["Id"])
    assert run_sync("pull").status == "done"
    invoice.refresh_from_db()
    assert invoice.status == "void"
    assert list(invoice.lines.values_list("kind", "amount", "qbo_line_id")) == kept_before
    qbo.app.clear_log()
    run_sync("both")
    assert sent == [] and _writes(qbo) == []
    # A later memo edit of the void invoice writes nothing either.
    Invoice.objects.filter(pk=invoice.pk).update(customer_memo="after void")
    run_sync("both")
    assert sent == [] and _writes(qbo) == []


def test_delete_in_qbo_of_rich_invoice(run_sync, qbo_ui, qbo, sent):
    lines, extra = _rich(qbo_ui, taxed=True)
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8510", lines, **extra)
    qbo_ui.delete("Invoice", made["Id"])
    assert run_sync("pull").status == "done"
    invoice.refresh_from_db()
    assert invoice.status == "void"
    assert invoice.lines.count() == 5
    again = run_sync("both")
    assert sent == []
    # The feed still holds the deletion (its overlap); it is applied once, not again.
    assert (again.updated, again.unchanged >= 1) == (0, True), (again.updated, again.unchanged)
    deleted_events = SyncEvent.objects.filter(record__invoice=invoice, action="pulled")
    assert [e.message for e in deleted_events if "deleted" in e.message] == [
        "Invoice 8510 was deleted in QuickBooks; marked void in the portal."
    ]
    Invoice.objects.filter(pk=invoice.pk).update(customer_memo="after delete")
    line = invoice.lines.get(kind="item", item__name="Hours")
    line.description = "x"
    line.save()
    run_sync("both")
    assert [op for op, _ in sent if op.endswith("create")] == []
    assert qbo_ui.find("Invoice", DocNumber="8510") is None


# =============================================================================================
# 7. Odd shapes
# =============================================================================================


def test_no_doc_number_pull_then_push_writes_nothing(run_sync, qbo_ui, qbo, sent):
    prefs = qbo_ui.rows("Preferences")[0]
    sales = dict(prefs.get("SalesFormsPrefs") or {})
    sales["CustomTxnNumbers"] = True
    qbo_ui.update("Preferences", {"Id": prefs["Id"], "SalesFormsPrefs": sales})
    invoice, made, _record = _pulled(run_sync, qbo_ui, None, [_sale(qbo_ui, "Hours", 100, 2, 50)])
    assert "DocNumber" not in made
    assert invoice.number == f"QBO-{made['Id']}"
    qbo.app.clear_log()
    run_sync("both")
    assert sent == [], sent
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert "DocNumber" not in after


def test_description_only_invoice(run_sync, qbo_ui, qbo, sent):
    invoice, made, record = _pulled(run_sync, qbo_ui, "8600", [_text("Nothing to charge")])
    assert record.status == "synced", record.details
    assert invoice.lines.count() == 1
    assert invoice.status != "void"
    run_sync("both")
    assert sent == []
    Invoice.objects.filter(pk=invoice.pk).update(customer_memo="memo")
    assert run_sync("push").updated == 1
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert _lines(after) == _lines(made)


def test_description_only_invoice_admin_noop(staff, run_sync, qbo_ui, qbo, sent):
    invoice, _made, _record = _pulled(run_sync, qbo_ui, "8601", [_text("Nothing to charge")])
    url, data = admin_post_data(staff, invoice)
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    assert invoice.lines.count() == 1
    run_sync("both")
    assert sent == []


def test_qty_zero_line(run_sync, qbo_ui, qbo, sent):
    lines = [_sale(qbo_ui, "Hours", 0, 0, 50), _sale(qbo_ui, "Design", 75, 1, 75)]
    invoice, made, record = _pulled(run_sync, qbo_ui, "8610", lines)
    assert record.status == "synced", record.details
    zero = invoice.lines.get(item__name="Hours")
    assert (zero.quantity, zero.unit_price, zero.amount) == (0, 50, 0)
    run_sync("both")
    assert sent == []
    line = invoice.lines.get(item__name="Design")
    line.description = "Edited"
    line.save()
    assert run_sync("push").updated == 1
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert _lines(after)[zero.qbo_line_id] == _lines(made)[zero.qbo_line_id]


def test_qty_zero_without_price_admin_edit(staff, run_sync, qbo_ui, qbo, sent):
    lines = [_sale(qbo_ui, "Design", 0, 0), _sale(qbo_ui, "Design", 75, 1, 75)]
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8611", lines)
    zero = invoice.lines.order_by("position").first()
    url, data = admin_post_data(staff, invoice)
    data[f"{line_prefix(data, zero)}-description"] = "Nothing charged"
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    run_sync("push")
    after = qbo_ui.find("Invoice", Id=made["Id"])
    before_detail = _lines(made)[zero.qbo_line_id]["SalesItemLineDetail"]
    after_detail = _lines(after)[zero.qbo_line_id]["SalesItemLineDetail"]
    assert after_detail == before_detail


def test_credit_to_zero_total_is_not_void(run_sync, qbo_ui, qbo, sent):
    # (The emulator refuses a negative total, so the credit brings it to exactly 0.)
    lines = [_sale(qbo_ui, "Hours", 200, 4, 50), _sale(qbo_ui, "Hours", -200, -4, 50)]
    invoice, made, record = _pulled(run_sync, qbo_ui, "8620", lines)
    assert record.status == "synced", record.details
    assert _portal_matches(invoice, made)
    assert invoice.total == Decimal("0.00") and invoice.status != "void"
    run_sync("both")
    assert sent == []
    Invoice.objects.filter(pk=invoice.pk).update(customer_memo="credit")
    assert run_sync("push").updated == 1
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert _lines(after) == _lines(made)


def test_long_descriptions(run_sync, qbo_ui, qbo, sent):
    lines = [_sale(qbo_ui, "Hours", 100, 2, 50, description="x" * 4000), _text("y" * 4000)]
    invoice, made, record = _pulled(run_sync, qbo_ui, "8630", lines)
    assert record.status == "synced", record.details
    run_sync("both")
    assert sent == []
    Invoice.objects.filter(pk=invoice.pk).update(customer_memo="long")
    assert run_sync("push").updated == 1
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert _lines(after) == _lines(made)


def test_documentation_line_without_item(staff, run_sync, qbo_ui, qbo, sent):
    doc_line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 0,
        "Description": "Site notes",
        "SalesItemLineDetail": {},
    }
    lines = [doc_line, _sale(qbo_ui, "Design", 75, 1, 75, description="Plans")]
    invoice, _made, record = _pulled(run_sync, qbo_ui, "8640", lines)
    assert record.status == "synced", record.details
    run_sync("both")
    assert sent == []
    url, data = admin_post_data(staff, invoice)
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    run_sync("both")
    assert sent == [], sent


def test_several_billing_emails_through_admin(staff, run_sync, qbo_ui, qbo, sent):
    """Only the billing email is edited; the Design line has no Description in QBO."""
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8650", [_sale(qbo_ui, "Design", 75, 1, 75)])
    url, data = admin_post_data(staff, invoice)
    data["billing_email"] = "ap@amy.example, owner@amy.example"
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    assert run_sync("push").updated == 1
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert after["BillEmail"]["Address"] == "ap@amy.example, owner@amy.example"
    assert _lines(after) == _lines(made)
    url, data = admin_post_data(staff, invoice)
    data["billing_email"] = "ap@amy.example; owner@amy.example"
    response = admin_save(staff, url, data)
    assert response.status_code == 200
    assert "is not an email address" in response.content.decode()


def test_mid_subtotal_line_keeps_line_ids(run_sync, qbo_ui, qbo):
    """QuickBooks keeps subtotal lines placed between lines (the emulator drops them, so the
    portal state after pulling one is made by hand). A push must still send every line with
    its Id, and the two sides' neutral forms of the same invoice must agree."""
    from sync.mappers import invoice as mapper

    lines = [_sale(qbo_ui, "Hours", 100, 2, 50), _sale(qbo_ui, "Design", 75, 1, 75)]
    invoice, made, _record = _pulled(run_sync, qbo_ui, "8660", lines)
    _first, second = list(invoice.lines.all())
    InvoiceLine.objects.filter(pk=second.pk).update(position=3)
    InvoiceLine.objects.create(
        invoice=invoice,
        position=2,
        kind="subtotal",
        quantity=None,
        amount=Decimal("100.00"),
        qbo_line_id="9",
        qbo_detail={
            "Amount": "100.00",
            "DetailType": "SubTotalLineDetail",
            "SubTotalLineDetail": {},
        },
    )
    # As QuickBooks holds that invoice:
    obj = dict(made)
    obj["Line"] = [
        made["Line"][0],
        {"Id": "9", "Amount": 100.0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        made["Line"][1],
        made["Line"][2],
    ]
    mapping = mapper.InvoiceMapping(
        fields={"lines": ("Line", "both"), "customer": ("CustomerRef", "both")}
    )
    fresh = Invoice.objects.prefetch_related("lines__item", "lines__tax_rate").get(pk=invoice.pk)
    ours = mapper.invoice_neutral_local(fresh, mapping, tax_codes={})
    theirs = mapper.invoice_neutral_qbo(obj, mapping)
    stored = [(x.qbo_line_id, x.qbo_detail) for x in fresh.lines.all()]
    item_ids = {"name:Hours": "2", "name:Design": "4", "qbo:2": "2", "qbo:4": "4"}
    body = mapper.invoice_to_qbo(
        ours, mapping, customer_id="1", item_ids=item_ids, stored_lines=stored
    )
    assert [x.get("Id") for x in body["Line"]] == ["1", "9", "2"], body["Line"]
    assert len(ours["lines"]) == len(theirs["lines"]), (ours["lines"], theirs["lines"])


def _foreign(qbo_ui, run_sync):
    customer = _euro_customer(qbo_ui)
    run_sync("pull")
    lines = [_sale(qbo_ui, "Hours", 100, 2, 50), _discount(qbo_ui, percent=10)]
    made = qbo_ui.create("Invoice", _euro_invoice(customer, "8700", lines))
    run_sync("pull")
    invoice = Invoice.objects.get(number="8700")
    return invoice, made


def test_foreign_invoice_memo_edit_reaches_qbo(run_sync, qbo_ui, qbo, sent):
    invoice, made = _foreign(qbo_ui, run_sync)
    assert invoice.currency == "EUR"
    Invoice.objects.filter(pk=invoice.pk).update(customer_memo="Danke")
    run_sync("push")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "synced", record.details
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert (after.get("CustomerMemo") or {}).get("value") == "Danke"
    assert (after["CurrencyRef"]["value"], after["ExchangeRate"]) == ("EUR", made["ExchangeRate"])


def test_foreign_invoice_admin_noop(staff, run_sync, qbo_ui, qbo, sent):
    invoice, _made = _foreign(qbo_ui, run_sync)
    url, data = admin_post_data(staff, invoice)
    response = admin_save(staff, url, data)
    assert response.status_code == 302, _errors(response)
    invoice.refresh_from_db()
    assert (invoice.currency, invoice.exchange_rate) == ("EUR", Decimal("1.0825"))
    run_sync("both")
    assert sent == []


def test_qbo_toggles_apply_tax_after_discount(run_sync, qbo_ui, qbo, sent):
    """The accountant moves the discount before tax in QBO: QBO's tax and total change, so
    the portal's must follow on the next pull (a synced invoice's totals are QBO's)."""
    lines = [_sale(qbo_ui, "Hours", 200, 4, 50, taxable=True), _discount(qbo_ui, percent=10)]
    invoice, made, record = _pulled(
        run_sync, qbo_ui, "8800", lines, TxnTaxDetail=_tax(qbo_ui), ApplyTaxAfterDiscount=False
    )
    assert _portal_matches(invoice, made)
    edited = qbo_ui.update("Invoice", {"Id": made["Id"], "ApplyTaxAfterDiscount": True})
    assert _totals(edited) != _totals(made)
    run_sync("pull")
    record.refresh_from_db()
    assert record.sync_token == edited["SyncToken"]
    assert _portal_matches(invoice, edited), (
        "portal",
        (invoice.total, invoice.tax_total),
        "QBO",
        _totals(edited),
    )
