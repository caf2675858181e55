"""Admin forms for the invoicing records."""

from decimal import Decimal

from django import forms

from portal.models import InvoiceLine


class PlainDecimalField(forms.DecimalField):
    """Shows a decimal with the places it has (2, not 2.0000000); compares by value, so an
    untouched field never counts as changed."""

    def prepare_value(self, value):
        if isinstance(value, Decimal):
            return format(value.normalize(), "f")
        return super().prepare_value(value)


class InvoiceLineForm(forms.ModelForm):
    class Meta:
        model = InvoiceLine
        fields = ["item", "description", "quantity", "unit_price", "tax_rate"]
        field_classes = {"quantity": PlainDecimalField, "unit_price": PlainDecimalField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit_price"].required = False
        self.fields["unit_price"].help_text = "Leave empty to use the item's sales price."
        if not self.instance.editable:
            # Discounts, bundles, description and subtotal lines are kept as QuickBooks has
            # them and sent back unchanged; they are edited in QuickBooks.
            for field in self.fields.values():
                field.disabled = True

    def clean(self):
        cleaned = super().clean()
        if not self.instance.editable or not self.has_changed():
            return cleaned
        line = self.instance
        item = cleaned.get("item")
        new = line.pk is None
        if item is None and not line.qbo_line_id:
            # QuickBooks' own lines may have no item (a documentation line); new ones need one.
            self.add_error("item", "Pick an item for the line.")
        if new and cleaned.get("quantity") is None:
            self.add_error("quantity", "Enter a quantity for the new line.")
        if item is not None and (new or "item" in self.changed_data):
            # The item's price and description fill what was left empty, for a new line or a
            # new item only: a line QuickBooks holds keeps its own (an amount-only line's rate
            # follows from its amount when it is given a quantity).
            if cleaned.get("unit_price") is None and cleaned.get("quantity") is not None:
                cleaned["unit_price"] = line.unit_price = item.sales_price
            if not cleaned.get("description"):
                cleaned["description"] = line.description = item.description
            if not item.active:
                self.add_error("item", f"{item.name} is inactive; pick an active item.")
        return cleaned
