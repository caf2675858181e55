"""Pure mappers, one module per synced kind: portal record <-> neutral form <-> QuickBooks.

Each has ``*_neutral_local`` (portal record to neutral), ``*_neutral_qbo`` (QuickBooks object
to neutral) and ``*_to_qbo`` (neutral to a request body); none does I/O.
"""
