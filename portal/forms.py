"""Admin forms for the invoicing records."""

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

    def clean(self):
        cleaned = super().clean()
        item = cleaned.get("item")
        if item is not None:
            if cleaned.get("unit_price") is None:
                cleaned["unit_price"] = item.sales_price
                self.instance.unit_price = item.sales_price
            if not cleaned.get("description"):
                cleaned["description"] = item.description
                self.instance.description = item.description
            if not item.active and "item" in self.changed_data:
                self.add_error("item", f"{item.name} is inactive; pick an active item.")
        return cleaned
