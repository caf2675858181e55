"""One adapter per synced kind (customer, item, invoice), in the order they are exported:
dependencies first."""

from sync.entities.customer import CustomerAdapter
from sync.entities.invoice import InvoiceAdapter
from sync.entities.item import ItemAdapter

ADAPTERS = (CustomerAdapter, ItemAdapter, InvoiceAdapter)

__all__ = ["ADAPTERS", "CustomerAdapter", "InvoiceAdapter", "ItemAdapter"]
