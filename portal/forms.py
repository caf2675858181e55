"""Admin forms for the invoicing records."""

from decimal import Decimal

from django import forms

from portal.models import InvoiceLine


class InvoiceLineForm(forms.ModelForm):
    class Meta:
        model = InvoiceLine
        fields = ["item", "description", "quantity", "unit_price", "tax_rate"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit_price"].required = False
        self.fields["unit_price"].help_text = "Leave empty to use the item's sales price."
        for name in ("quantity", "unit_price"):
            value = self.initial.get(name)
            if value is not None:
                # Seven places are kept; as many are shown as the value has (2, not 2.0000000).
                self.initial[name] = format(Decimal(value).normalize(), "f")
        if not self.instance.editable:
            # Discounts, bundles, description and subtotal lines are kept as QuickBooks has
            # them and sent back unchanged; they are edited in QuickBooks.
            for field in self.fields.values():
                field.disabled = True

    def clean(self):
        cleaned = super().clean()
        for name in ("quantity", "unit_price"):
            value = self.initial.get(name)
            if value is not None:
                # Seven places are kept; as many are shown as the value has (2, not 2.0000000).
                self.initial[name] = format(Decimal(value).normalize(), "f")
        if not self.instance.editable:
            return cleaned
        item = cleaned.get("item")
        if item is None and not self.instance.qbo_line_id and self.has_changed():
            # QuickBooks' own lines may have no item (a documentation line); new ones need one.
            self.add_error("item", "Pick an item for the line.")
        if item is not None:
            amount_only = cleaned.get("quantity") is None and self.instance.qbo_line_id
            if cleaned.get("unit_price") is None and not amount_only:
                cleaned["unit_price"] = item.sales_price
                self.instance.unit_price = item.sales_price
            if not cleaned.get("description"):
                cleaned["description"] = item.description
                self.instance.description = item.description
            if not item.active and "item" in self.changed_data:
                self.add_error("item", f"{item.name} is inactive; pick an active item.")
        return cleaned
