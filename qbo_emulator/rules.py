"""QBO's write rules for the emulated entities (qbo-api.md sections 8 and 9).

``Company`` wraps one realm and performs create, update (full and sparse), delete and void,
validating the way QBO does and recording the change events that feed webhooks and CDC.
Callers hold ``realm.lock`` around every call.
"""

from __future__ import annotations

import copy
import re
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from . import errors
from .clock import Clock, iso_seconds, iso_utc
from .store import NAME_LISTS, NAME_SPACE, SINGLETONS, TRANSACTIONS, Realm

CENT = Decimal("0.01")
DELETED_SUFFIX = " (deleted)"
DELETED_NAME = re.compile(r" \(deleted(?:-\d+)?\)$")
FORBIDDEN_NAME_CHARS = (":", "\t", "\n")
PERSON_NAME_FIELDS = ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")
NAME_LENGTHS = (
    ("Title", 16),
    ("Suffix", 16),
    ("GivenName", 100),
    ("MiddleName", 100),
    ("FamilyName", 100),
    ("CompanyName", 100),
    ("DisplayName", 500),
    ("PrintOnCheckName", 110),
    ("Notes", 1024),
)


def _fields(text: str) -> frozenset[str]:
    return frozenset(text.split())


CURRENCY_NAMES = {
    "USD": "United States Dollar",
    "EUR": "Euro",
    "GBP": "British Pound Sterling",
    "CAD": "Canadian Dollar",
}
COMMON_FIELDS = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "status"})
ALLOWED_FIELDS: dict[str, frozenset[str]] = {
    "Customer": _fields(
        "Title GivenName MiddleName FamilyName Suffix DisplayName FullyQualifiedName "
        "CompanyName PrintOnCheckName Active PrimaryPhone AlternatePhone Mobile Fax "
        "PrimaryEmailAddr WebAddr OtherContactInfo DefaultTaxCodeRef Taxable BillAddr "
        "ShipAddr Notes Job BillWithParent ParentRef Level SalesTermRef PaymentMethodRef "
        "Balance OpenBalanceDate BalanceWithJobs CurrencyRef PreferredDeliveryMethod "
        "ResaleNum TaxExemptionReasonId ARAccountRef PrimaryTaxIdentifier "
        "SecondaryTaxIdentifier CustomerTypeRef BusinessNumber GSTIN GSTRegistrationType "
        "IsProject ClientEntityId Source V4IDPseudonym TaxRegimeRef"
    ),
    "Vendor": _fields(
        "Title GivenName MiddleName FamilyName Suffix DisplayName CompanyName "
        "PrintOnCheckName Active PrimaryPhone AlternatePhone Mobile Fax PrimaryEmailAddr "
        "WebAddr OtherContactInfo BillAddr ShipAddr OtherAddr Notes TaxIdentifier TermRef "
        "Balance OpenBalanceDate BillRate CostRate AcctNum Vendor1099 T4AEligible "
        "T5018Eligible CurrencyRef APAccountRef HasTPAR TaxReportingBasis BusinessNumber "
        "GSTIN GSTRegistrationType VendorPaymentBankDetail Source V4IDPseudonym"
    ),
    "Employee": _fields(
        "Title GivenName MiddleName FamilyName Suffix DisplayName PrintOnCheckName Active "
        "PrimaryPhone Mobile PrimaryEmailAddr PrimaryAddr OtherContactInfo EmployeeNumber "
        "SSN BillableTime BillRate CostRate BirthDate Gender HiredDate ReleasedDate "
        "Organization V4IDPseudonym"
    ),
    "Item": _fields(
        "Name Sku Description Active SubItem ParentRef Level FullyQualifiedName Taxable "
        "SalesTaxIncluded UnitPrice RatePercent Type PaymentMethodRef UOMSetRef "
        "IncomeAccountRef PurchaseDesc PurchaseTaxIncluded PurchaseCost ExpenseAccountRef "
        "COGSAccountRef AssetAccountRef PrefVendorRef AvgCost TrackQtyOnHand QtyOnHand "
        "QtyOnPurchaseOrder QtyOnSalesOrder ReorderPoint ManPartNum DepositToAccountRef "
        "SalesTaxCodeRef PurchaseTaxCodeRef InvStartDate BuildPoint PrintGroupedItems "
        "SpecialItem SpecialItemType ItemGroupDetail ItemAssemblyDetail AbatementRate "
        "ReverseChargeRate ServiceType ItemCategoryType ItemEx TaxClassificationRef "
        "ClassRef Source"
    ),
    "Account": _fields(
        "Name SubAccount ParentRef Description FullyQualifiedName Active Classification "
        "AccountType AccountSubType AcctNum BankNum OpeningBalance OpeningBalanceDate "
        "CurrentBalance CurrentBalanceWithSubAccounts CurrencyRef TaxAccount TaxCodeRef "
        "OnlineBankingEnabled FIName JournalCodeRef AccountAlias TxnLocationType"
    ),
    "Invoice": _fields(
        "DocNumber TxnDate DepartmentRef CurrencyRef ExchangeRate PrivateNote TxnStatus "
        "LinkedTxn Line TxnTaxDetail CustomerRef CustomerMemo BillAddr ShipAddr "
        "FreeFormAddress ShipFromAddr RemitToRef ClassRef SalesTermRef DueDate "
        "GlobalTaxCalculation ShipMethodRef ShipDate TrackingNum TotalAmt HomeTotalAmt "
        "ApplyTaxAfterDiscount PrintStatus EmailStatus BillEmail BillEmailCc BillEmailBcc "
        "DeliveryInfo Balance HomeBalance Deposit DepositToAccountRef AllowIPNPayment "
        "AllowOnlinePayment AllowOnlineCreditCardPayment AllowOnlineACHPayment CustomField "
        "AutoDocNumber TransactionLocationType TaxExemptionRef InvoiceLink ProjectRef "
        "RecurDataRef TxnSource Tag"
    ),
    "ExchangeRate": _fields("SourceCurrencyCode TargetCurrencyCode Rate AsOfDate CustomField"),
    "Payment": _fields(
        "TxnDate CustomerRef ARAccountRef DepositToAccountRef PaymentMethodRef "
        "PaymentRefNum CreditCardPayment TotalAmt UnappliedAmt ProcessPayment CurrencyRef "
        "ExchangeRate PrivateNote TxnStatus Line LinkedTxn TxnSource ProjectRef "
        "TransactionLocationType DepartmentRef"
    ),
}

# Read-only fields the server keeps across a full update (everything else left out of a
# full update is cleared, as QBO documents).
READ_ONLY = {
    "Customer": ("Balance", "BalanceWithJobs"),
    "Vendor": ("Balance",),
    "Employee": (),
    "Item": (),
    "Account": ("CurrentBalance", "CurrentBalanceWithSubAccounts"),
    "Invoice": (),
    "Payment": (),
    "CompanyInfo": (),
    "Preferences": (),
}

ACCOUNT_TYPES = {
    "Bank": ("Asset", "Checking"),
    "Accounts Receivable": ("Asset", "AccountsReceivable"),
    "Other Current Asset": ("Asset", "OtherCurrentAssets"),
    "Fixed Asset": ("Asset", "OtherFixedAssets"),
    "Other Asset": ("Asset", "OtherLongTermAssets"),
    "Accounts Payable": ("Liability", "AccountsPayable"),
    "Credit Card": ("Liability", "CreditCard"),
    "Other Current Liability": ("Liability", "OtherCurrentLiabilities"),
    "Long Term Liability": ("Liability", "OtherLongTermLiabilities"),
    "Equity": ("Equity", "OpeningBalanceEquity"),
    "Income": ("Revenue", "SalesOfProductIncome"),
    "Cost of Goods Sold": ("Expense", "SuppliesMaterialsCogs"),
    "Expense": ("Expense", "OtherMiscellaneousServiceCost"),
    "Other Income": ("Revenue", "OtherMiscellaneousIncome"),
    "Other Expense": ("Expense", "OtherMiscellaneousExpense"),
    "Non-Posting": ("Asset", "OtherNonPosting"),
}
# Enough of the XSD subtype enum to infer an AccountType when only the subtype is sent.
SUBTYPE_TO_TYPE = {
    "Checking": "Bank",
    "Savings": "Bank",
    "AccountsReceivable": "Accounts Receivable",
    "Inventory": "Other Current Asset",
    "UndepositedFunds": "Other Current Asset",
    "OtherCurrentAssets": "Other Current Asset",
    "AccountsPayable": "Accounts Payable",
    "SalesOfProductIncome": "Income",
    "ServiceFeeIncome": "Income",
    "DiscountsRefundsGiven": "Income",
    "SuppliesMaterialsCogs": "Cost of Goods Sold",
    "CostOfLaborCos": "Cost of Goods Sold",
    "OfficeGeneralAdministrativeExpenses": "Expense",
    "OtherMiscellaneousServiceCost": "Expense",
}
# The company setting "apply discount before tax", the default of each invoice's
# ApplyTaxAfterDiscount. UNCONFIRMED name: Intuit documents no such Preferences field; the
# emulator keeps it in SalesFormsPrefs under the invoice field's own name.
TAX_AFTER_DISCOUNT_PREF = "ApplyTaxAfterDiscount"
ITEM_TYPES_WITH_INCOME = frozenset({"Service", "NonInventory", "Inventory"})
ITEM_TYPES = frozenset({"Service", "NonInventory", "Inventory", "Category", "Group"})
# Item types a bundle cannot hold: bundles do not nest, and categories are not sold.
NOT_IN_BUNDLE = frozenset({"Group", "Category"})


def money(value: object, element: str = "Amount") -> Decimal:
    """Parse a JSON number into Decimal; a non-number is QBO's 2010 deserialisation error."""
    if isinstance(value, bool) or value is None:
        raise errors.unsupported_property(
            element, "", f"Property Name:{element} must be a number, supplied value:{value}"
        )
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise errors.unsupported_property(
            element, "", f"Property Name:{element} must be a number, supplied value:{value}"
        ) from None


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def wire_number(value: Decimal) -> float | int:
    """QBO prints amounts as JSON numbers (``100.0``), quantities as given."""
    return float(value)


def plain_number(value: Decimal) -> int | float:
    """A quantity or price the server computed: whole values without a fraction."""
    return int(value) if value == value.to_integral_value() else float(value)


def all_lines(lines: list | None) -> list[dict]:
    """An invoice's lines with each bundle's component lines after it."""
    result = []
    for line in lines or []:
        result.append(line)
        group = line.get("GroupLineDetail")
        if isinstance(group, dict):
            result.extend(part for part in group.get("Line") or [] if isinstance(part, dict))
    return result


class LineIds:
    """Line Ids for one invoice write, shared by lines and bundle components.

    A sent Id the stored invoice has (at any level) is kept once; any other line gets the
    next number after the stored ones. UNCONFIRMED: components are numbered in the same
    sequence as the invoice's other lines.
    """

    def __init__(self, existing: dict | None) -> None:
        stored = all_lines((existing or {}).get("Line"))
        self.known = {str(line["Id"]) for line in stored if line.get("Id")}
        numbers = [int(i) for i in self.known if i.isdigit()]
        self.next = max(numbers, default=0) + 1
        self.used: set[str] = set()

    def assign(self, line: dict) -> None:
        line_id = str(line.get("Id", ""))
        if line_id not in self.known or line_id in self.used:
            line_id = str(self.next)
            self.next += 1
        self.used.add(line_id)
        line["Id"] = line_id


class Company:
    """Writes to one realm following QBO's rules; collects change events for webhooks."""

    def __init__(self, realm: Realm, clock: Clock, *, user: str = "Emulator User") -> None:
        self.realm = realm
        self.clock = clock
        self.user = user
        # (entity, Id, operation, LastUpdated in UTC, merged-away Id or None) for every
        # change, in order.
        self.events: list[tuple[str, str, str, str, str | None]] = []

    # -- reads ------------------------------------------------------------------------

    def read(self, entity: str, obj_id: str) -> dict:
        """Return the object, or raise the 610 fault QBO gives for an unknown or deleted Id.

        QBO answers a read of a missing Id with 400/610 "Object Not Found" rather than 404;
        404 is kept for unknown URLs.
        """
        if entity in SINGLETONS:
            obj = self.realm.singleton(entity)
            if obj and obj_id in (obj.get("Id"), self.realm.realm_id):
                return obj
            raise errors.not_found()
        obj = self.realm.get(entity, obj_id)
        if obj is None:
            raise errors.not_found()
        return obj

    # -- create / update --------------------------------------------------------------

    def save(
        self,
        entity: str,
        body: dict,
        *,
        include: frozenset[str] = frozenset(),
        ui: bool = False,
    ) -> dict:
        """Create (no ``Id``) or update (``Id`` + ``SyncToken``, optional ``sparse``).

        With ``ui=True`` the change is made as a person in the QBO UI would: the current
        SyncToken is used when none is given, and updates are sparse unless told otherwise.
        Raises ApiError with QBO's code on any rule violation.
        """
        if entity in ("TaxCode", "TaxRate"):
            # US tax codes and rates are read-only in the v3 API (non-US codes go through
            # /taxservice/taxcode, which the emulator does not serve).
            raise errors.unsupported_operation("Create" if "Id" not in body else "Update")
        self._check_fields(entity, body)
        if body.get("Id") in (None, "") and entity not in SINGLETONS:
            existing = None
            merged = {k: v for k, v in body.items() if k not in COMMON_FIELDS}
        else:
            existing = self._existing(entity, body, ui=ui)
            sparse = body.get("sparse") is True or (ui and body.get("sparse") is not False)
            payload = {k: v for k, v in body.items() if k not in COMMON_FIELDS}
            if sparse:
                # Sparse merges top-level elements only: a sent aggregate (an address, the
                # Line array) replaces the stored one as a whole.
                merged = {k: v for k, v in existing.items() if k not in COMMON_FIELDS}
                if entity == "Preferences":
                    payload = _merge_preference_groups(existing, payload)
                merged.update(payload)
                if entity in NAME_SPACE and not str(payload.get("DisplayName", "x")).strip():
                    # DisplayName cannot be cleared by a sparse update.
                    merged["DisplayName"] = existing.get("DisplayName")
            else:
                merged = payload
                for key in READ_ONLY.get(entity, ()):
                    if key in existing:
                        merged[key] = existing[key]
        normalize = getattr(self, f"_normalize_{entity.lower()}")
        # A sparse update goes through the same validation as a create, after merging.
        obj, operation = normalize(merged, existing, include)
        ts = self._stamp(obj, existing, entity)
        self._commit(entity, obj, operation or ("Update" if existing else "Create"), ts)
        self._after_write(entity, existing, obj, ts)
        return self.realm.get(entity, obj["Id"]) if entity not in SINGLETONS else obj

    # -- delete / void ----------------------------------------------------------------

    def delete(self, entity: str, body: dict, *, ui: bool = False) -> dict:
        """Delete a transaction; name-list entities are made inactive instead (QBO refuses)."""
        if entity not in TRANSACTIONS:
            raise errors.unsupported_operation("Delete")
        existing = self._existing(entity, body, ui=ui)
        ts = self.clock.time()
        obj_id = existing["Id"]
        if entity == "Invoice":
            self._unlink_payments(obj_id, ts)
            self._adjust_stock(existing.get("Line"), None)
        del self.realm.objects[entity][obj_id]
        self.realm.tombstones[entity][obj_id] = iso_seconds(ts)
        self.events.append((entity, obj_id, "Delete", iso_utc(ts), None))
        if entity == "Payment":
            self._refresh_invoices(_linked_invoice_ids(existing), ts)
        else:
            self._refresh_customer_balance(existing.get("CustomerRef", {}).get("value"))
        return {"domain": "QBO", "status": "Deleted", "Id": obj_id}

    def void(self, entity: str, body: dict, *, ui: bool = False) -> dict:
        """Void an invoice or payment: kept, amounts zeroed, PrivateNote "Voided"."""
        if entity not in TRANSACTIONS:
            raise errors.unsupported_operation("Void")
        existing = self._existing(entity, body, ui=ui)
        ts = self.clock.time()
        obj = copy.deepcopy(existing)
        obj["PrivateNote"] = "Voided"
        if entity == "Invoice":
            self._unlink_payments(existing["Id"], ts)
            self._adjust_stock(existing.get("Line"), None)
            for line in all_lines(obj.get("Line")):
                line["Amount"] = 0.0
                detail = line.get("SalesItemLineDetail")
                if detail and "Qty" in detail:
                    detail["Qty"] = 0
            tax = obj.get("TxnTaxDetail")
            if tax:
                tax["TotalTax"] = 0.0
                for tax_line in tax.get("TaxLine", []):
                    tax_line["Amount"] = 0.0
                    tax_line.get("TaxLineDetail", {})["NetAmountTaxable"] = 0.0
            obj["TotalAmt"] = 0.0
            obj["Balance"] = 0.0
            obj.pop("LinkedTxn", None)
        else:
            for line in obj.get("Line", []):
                line["Amount"] = 0.0
            obj["TotalAmt"] = 0.0
            obj["UnappliedAmt"] = 0.0
        self._stamp(obj, existing, entity)
        self._commit(entity, obj, "Void", ts)
        if entity == "Payment":
            self._refresh_invoices(_linked_invoice_ids(existing), ts)
        else:
            self._refresh_customer_balance(obj["CustomerRef"]["value"])
        return self.realm.get(entity, obj["Id"])

    # -- shared helpers ---------------------------------------------------------------

    def _check_fields(self, entity: str, body: dict) -> None:
        allowed = ALLOWED_FIELDS.get(entity)
        if allowed is None:
            return
        for key in body:
            if key not in allowed and key not in COMMON_FIELDS:
                raise errors.unsupported_property(key, entity)

    def _existing(self, entity: str, body: dict, *, ui: bool) -> dict:
        obj_id = body.get("Id")
        if entity in SINGLETONS:
            existing = self.realm.singleton(entity)
            if not existing or (obj_id not in (None, existing.get("Id"))):
                raise errors.not_found()
        else:
            if obj_id in (None, ""):
                raise errors.required("Id")
            existing = self.realm.get(entity, str(obj_id))
            if existing is None:
                raise errors.not_found()
        token = body.get("SyncToken")
        if token is None:
            if not ui:
                raise errors.required("SyncToken")
            token = existing.get("SyncToken", "0")
        if str(token) != str(existing.get("SyncToken", "0")):
            raise errors.stale_object(self.user)
        return existing

    def _stamp(self, obj: dict, existing: dict | None, entity: str) -> float:
        ts = self.clock.time()
        if existing is None:
            obj["Id"] = self.realm.allocate_id(entity)
            obj["SyncToken"] = "0"
            created = iso_seconds(ts)
        else:
            obj["Id"] = existing["Id"]
            obj["SyncToken"] = str(int(existing.get("SyncToken", "0")) + 1)
            created = existing.get("MetaData", {}).get("CreateTime", iso_seconds(ts))
        obj["domain"] = "QBO"
        obj["sparse"] = False
        obj["MetaData"] = {"CreateTime": created, "LastUpdatedTime": iso_seconds(ts)}
        return ts

    def _commit(self, entity: str, obj: dict, operation: str, ts: float) -> None:
        self.realm.objects[entity][obj["Id"]] = obj
        self.events.append((entity, obj["Id"], operation, iso_utc(ts), None))

    def _after_write(self, entity: str, existing: dict | None, obj: dict, ts: float) -> None:
        if entity == "Payment":
            ids = _linked_invoice_ids(obj) | (_linked_invoice_ids(existing) if existing else set())
            self._refresh_invoices(ids, ts)
        elif entity == "Invoice":
            self._adjust_stock(existing.get("Line") if existing else None, obj.get("Line"))
            self._refresh_customer_balance(obj["CustomerRef"]["value"])
            if existing and existing["CustomerRef"]["value"] != obj["CustomerRef"]["value"]:
                self._refresh_customer_balance(existing["CustomerRef"]["value"])

    def _ref(self, entity: str, ref: object, element: str, *, needed: bool = True) -> dict | None:
        """Resolve a reference: absent → 2020, unknown → 2500, inactive → 610."""
        if not isinstance(ref, dict) or ref.get("value") in (None, ""):
            if needed:
                raise errors.required(element)
            return None
        obj = self.realm.get(entity, str(ref["value"]))
        if obj is None:
            raise errors.invalid_reference(element, str(ref["value"]))
        if obj.get("Active") is False:
            raise errors.inactive_reference(element)
        return obj

    def _date(self, value: object, element: str) -> date | None:
        if value in (None, ""):
            return None
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError:
            raise errors.unsupported_property(
                element, "", f"Property Name:{element} invalid date, supplied value:{value}"
            ) from None

    def _check_length(self, obj: dict, element: str, maximum: int) -> None:
        value = obj.get(element)
        if isinstance(value, str) and len(value) > maximum:
            raise errors.length(element, maximum, len(value))

    def _check_name_chars(self, obj: dict, elements: tuple[str, ...]) -> None:
        # The exact code for a colon/tab/newline in a name is UNCONFIRMED; QBO reports it as
        # a business validation error, so 6000 is used.
        for element in elements:
            value = obj.get(element)
            if isinstance(value, str) and any(ch in value for ch in FORBIDDEN_NAME_CHARS):
                raise errors.business(
                    f"{element} cannot contain a colon (:), a tab or a newline.", element
                )

    def _activation(
        self, entity: str, out: dict, existing: dict | None, name_key: str
    ) -> str | None:
        """Apply QBO's " (deleted)" renaming when a name-list object is made inactive.

        Returns "Delete" for the webhook when an active object becomes inactive: for name
        lists that is QBO's delete (UNCONFIRMED: the event name for a deactivation).
        """
        was_active = existing is None or existing.get("Active", True) is not False
        active = out.get("Active", True) is not False
        out["Active"] = active
        name = out.get(name_key) or ""
        if not active and was_active and not DELETED_NAME.search(name):
            # A second deactivated "X" becomes "X (deleted-1)" (UNCONFIRMED numbering), so
            # deactivation itself never trips the duplicate-name rule.
            candidate, number = name + DELETED_SUFFIX, 0
            while self._name_taken(entity, name_key, candidate, existing and existing["Id"]):
                number += 1
                candidate = f"{name} (deleted-{number})"
            out[name_key] = candidate
        elif active and not was_active:
            # UNCONFIRMED: reactivating restores the name without the suffix.
            out[name_key] = DELETED_NAME.sub("", name)
        if existing is not None and was_active and not active:
            return "Delete"
        return None

    def _name_taken(self, entity: str, key: str, value: str, own_id: str | None) -> bool:
        return self._name_holder(entity, key, value, own_id) is not None

    def _name_holder(self, entity: str, key: str, value: str, own_id: str | None) -> str | None:
        """The list in which another object already has ``value`` as its ``key``, or None.

        Names compare ignoring case and surrounding spaces. Customers, vendors and
        employees are one name space (qbo-api.md section 13); other lists are their own.
        """
        wanted = value.strip().casefold()
        for name in NAME_SPACE if entity in NAME_SPACE else (entity,):
            for row in self.realm.objects[name].values():
                mine = name == entity and row["Id"] == own_id
                if not mine and str(row.get(key, "")).strip().casefold() == wanted:
                    return name
        return None

    def _unique(self, entity: str, key: str, value: str, own_id: str | None) -> None:
        # Case-insensitive and including inactive objects: QBO renames deactivated names
        # with " (deleted)" precisely so they stop clashing, which implies inactive names
        # still count (qbo-api.md marks this UNCONFIRMED). A merged-away customer is gone,
        # so its name is free.
        holder = self._name_holder(entity, key, value, own_id)
        if holder is not None:
            raise errors.duplicate_name(entity, holder if entity in NAME_SPACE else None)

    def _currency(self, out: dict, customer: dict | None = None) -> None:
        """The object's currency, as QuickBooks sets it (qbo-api.md section 13).

        With multicurrency off, only the home currency is accepted. With it on, a
        transaction's currency must be its customer's, and it carries ``ExchangeRate`` (home
        units per foreign unit). The fault code for a foreign currency without multicurrency
        is UNCONFIRMED: the emulator answers 6000 (business validation). A foreign
        transaction without ``ExchangeRate`` takes the rate table's rate for its TxnDate, as
        QuickBooks takes its currency service's; with no rate known for the currency it is
        refused (UNCONFIRMED; the stricter choice).
        """
        prefs = self.realm.singleton("Preferences").get("CurrencyPrefs") or {}
        home = self._home_currency()
        given = out.get("CurrencyRef") if isinstance(out.get("CurrencyRef"), dict) else {}
        currency = str(given.get("value") or "") or home
        if customer is not None and prefs.get("MultiCurrencyEnabled"):
            own = str((customer.get("CurrencyRef") or {}).get("value") or home)
            if currency != own:
                raise errors.business(
                    f"The currency of the transaction ({currency}) must match the currency of "
                    f"the customer ({own}).",
                    "CurrencyRef",
                )
        if currency != home and not prefs.get("MultiCurrencyEnabled"):
            raise errors.business(
                f"Multicurrency is not enabled for this company; {currency} cannot be used "
                f"(the home currency is {home}).",
                "CurrencyRef",
            )
        out["CurrencyRef"] = {"value": currency, "name": CURRENCY_NAMES.get(currency, currency)}
        if customer is None:
            return
        if currency == home:
            if prefs.get("MultiCurrencyEnabled"):
                out["ExchangeRate"] = 1
        elif out.get("ExchangeRate") in (None, ""):
            txn_date = self._date(out.get("TxnDate"), "TxnDate") or self.clock.today()
            rate = self._rate_in_effect(currency, txn_date)
            if rate is None:
                raise errors.required("ExchangeRate")
            out["ExchangeRate"] = rate["Rate"]

    def _home_currency(self) -> str:
        prefs = self.realm.singleton("Preferences").get("CurrencyPrefs") or {}
        return str((prefs.get("HomeCurrency") or {}).get("value") or "USD")

    # -- ExchangeRate -----------------------------------------------------------------

    def exchange_rate(self, code: str | None, as_of: str | None) -> dict:
        """The ExchangeRate of currency ``code`` into the home currency on ``as_of``.

        The rate in effect is the latest one set on or before that date. UNCONFIRMED: the
        answer carries the asked date as AsOfDate, with SyncToken "0" until a rate is set
        for that very date (QuickBooks' service has a rate for every day), and ``as_of``
        defaults to today. Raises 2020 without ``code``, 610 when no rate is known.
        """
        source = self._currency_code(code, "sourcecurrencycode")
        day = self._date(as_of, "asofdate") or self.clock.today()
        stored = self.realm.rates.get(source, {}).get(day.isoformat())
        if stored is not None and stored.get("TargetCurrencyCode") == self._home_currency():
            return stored
        rate = self._rate_in_effect(source, day)
        if rate is None:
            raise errors.validation(
                "610",
                "Object Not Found",
                f"No exchange rate is known for {source} on or before {day.isoformat()}.",
                "sourcecurrencycode",
            )
        return {**copy.deepcopy(rate), "AsOfDate": day.isoformat(), "SyncToken": "0"}

    def set_exchange_rate(self, body: dict, *, ui: bool = False) -> dict:
        """Set the rate of a currency for one date (POST /exchangerate).

        SyncToken is the one a read for that date answers ("0" before any rate is set for
        the date itself); with ``ui=True`` it may be left out. Raises 5010 for a stale
        SyncToken and the faults of ``_checked_rate``.
        """
        source, day, rate = self._checked_rate(body)
        current = self.realm.rates.get(source, {}).get(day.isoformat()) or {"SyncToken": "0"}
        token = body.get("SyncToken", current["SyncToken"] if ui else None)
        if token is None:
            raise errors.required("SyncToken")
        if str(token) != current["SyncToken"]:
            raise errors.stale_object(self.user)
        record = {
            "SourceCurrencyCode": source,
            "TargetCurrencyCode": self._home_currency(),
            "Rate": float(rate),
            "AsOfDate": day.isoformat(),
            "SyncToken": str(int(current["SyncToken"]) + 1),
            "domain": "QBO",
            "sparse": False,
            "MetaData": {"LastUpdatedTime": iso_seconds(self.clock.time())},
        }
        self.realm.rates.setdefault(source, {})[day.isoformat()] = record
        return record

    def _checked_rate(self, body: dict) -> tuple[str, date, Decimal]:
        """(SourceCurrencyCode, AsOfDate, Rate) of an ExchangeRate update.

        Raises 2020 for a missing one, and 6000 for the home currency, a target other than
        the home currency or a rate that is not positive (codes UNCONFIRMED).
        """
        self._check_fields("ExchangeRate", body)
        source = self._currency_code(body.get("SourceCurrencyCode"), "SourceCurrencyCode")
        home = self._home_currency()
        if source == home:
            raise errors.business(
                f"{home} is the home currency; its rate is always 1.", "SourceCurrencyCode"
            )
        if body.get("TargetCurrencyCode") not in (None, "", home):
            raise errors.business(
                f"Exchange rates are kept against the home currency, {home}.",
                "TargetCurrencyCode",
            )
        day = self._date(body.get("AsOfDate"), "AsOfDate")
        if day is None:
            raise errors.required("AsOfDate")
        if body.get("Rate") in (None, ""):
            raise errors.required("Rate")
        rate = money(body["Rate"], "Rate")
        if rate <= 0:
            raise errors.business("An exchange rate must be more than zero.", "Rate")
        return source, day, rate

    def _rate_in_effect(self, source: str, day: date) -> dict | None:
        """The latest rate of ``source`` into the home currency set on or before ``day``."""
        home = self._home_currency()
        days = [
            as_of
            for as_of, rate in self.realm.rates.get(source, {}).items()
            if as_of <= day.isoformat() and rate.get("TargetCurrencyCode") == home
        ]
        return self.realm.rates[source][max(days)] if days else None

    @staticmethod
    def _currency_code(value: object, element: str) -> str:
        if value in (None, ""):
            raise errors.required(element)
        code = str(value).upper()
        if len(code) != 3:
            raise errors.length(element, 3, len(code))
        if not code.isalpha():
            raise errors.unsupported_property(
                element, "ExchangeRate", f"Property Name:{element} must be an ISO 4217 code"
            )
        return code

    # -- Customer, Vendor, Employee ---------------------------------------------------

    def _person_name(self, out: dict) -> None:
        """Check the name and contact fields customers, vendors and employees share, and set
        a trimmed DisplayName, built from Title, GivenName, MiddleName, FamilyName and Suffix
        when none is sent.

        Raises 2050 for an over-long field, 6000 for a colon, tab or newline in a name or a
        malformed email address, and 6080 when there is no name at all.
        """
        for element, maximum in NAME_LENGTHS:
            self._check_length(out, element, maximum)
        self._check_name_chars(out, (*PERSON_NAME_FIELDS, "DisplayName"))
        display = str(out.get("DisplayName") or "").strip()
        if not display:
            display = " ".join(str(out[k]).strip() for k in PERSON_NAME_FIELDS if out.get(k))
        if not display:
            raise errors.no_name()
        out["DisplayName"] = display
        email = (out.get("PrimaryEmailAddr") or {}).get("Address")
        if email is not None and ("@" not in email or "." not in email):
            # UNCONFIRMED code for a malformed address; QBO reports a validation error.
            raise errors.business("Email Address does not conform to the syntax rules.")

    def _normalize_customer(self, data: dict, existing: dict | None, include) -> tuple:
        out = dict(data)
        self._person_name(out)
        operation = self._activation("Customer", out, existing, "DisplayName")
        parent = self._ref("Customer", out.get("ParentRef"), "ParentRef", needed=False)
        if parent is not None:
            level = int(parent.get("Level", 0)) + 1
            if level > 4:
                raise errors.business("Customers can be nested at most 4 levels deep.")
            out["Job"] = True
            out["Level"] = level
            out["ParentRef"] = {"value": parent["Id"]}
            out["FullyQualifiedName"] = f"{parent['FullyQualifiedName']}:{out['DisplayName']}"
        else:
            out["Job"] = False
            out.pop("Level", None)
            out["FullyQualifiedName"] = out["DisplayName"]
        out.setdefault("BillWithParent", False)
        out.setdefault("Taxable", True)
        out.setdefault("PreferredDeliveryMethod", "Print")
        out.setdefault("Balance", 0.0)
        out.setdefault("BalanceWithJobs", out["Balance"])
        self._currency(out)
        self._unique("Customer", "DisplayName", out["DisplayName"], existing and existing["Id"])
        return out, operation

    def _normalize_vendor(self, data: dict, existing: dict | None, include) -> tuple:
        out = dict(data)
        self._person_name(out)
        # UNCONFIRMED default: Intuit's sample vendors all carry PrintOnCheckName, set to
        # the DisplayName unless given.
        out.setdefault("PrintOnCheckName", out["DisplayName"])
        operation = self._activation("Vendor", out, existing, "DisplayName")
        out.setdefault("Vendor1099", False)
        out.setdefault("Balance", 0.0)
        self._currency(out)
        self._unique("Vendor", "DisplayName", out["DisplayName"], existing and existing["Id"])
        return out, operation

    def _normalize_employee(self, data: dict, existing: dict | None, include) -> tuple:
        out = dict(data)
        # Intuit's Employee page says GivenName and FamilyName are required; its create
        # request asks for at least one of them. UNCONFIRMED: the emulator needs one (a
        # DisplayName alone is refused), with QBO's required-parameter fault.
        if not any(str(out.get(key) or "").strip() for key in ("GivenName", "FamilyName")):
            raise errors.required(
                "GivenName", "Required parameter GivenName or FamilyName is missing in the request"
            )
        self._person_name(out)
        out.setdefault("PrintOnCheckName", out["DisplayName"])
        for key in ("BirthDate", "HiredDate", "ReleasedDate"):
            self._date(out.get(key), key)
        if out.get("SSN"):
            # QBO never answers an SSN in full (UNCONFIRMED mask: the last four digits kept).
            out["SSN"] = "XXX-XX-" + re.sub(r"\D", "", str(out["SSN"]))[-4:]
        out.setdefault("BillableTime", False)
        operation = self._activation("Employee", out, existing, "DisplayName")
        self._unique("Employee", "DisplayName", out["DisplayName"], existing and existing["Id"])
        return out, operation

    # -- Customer merge ---------------------------------------------------------------

    def merge_customer(self, from_id: str, into_id: str) -> dict:
        """Merge customer ``from_id`` into ``into_id`` and return the survivor, as QBO's UI
        does when a customer is renamed to another's DisplayName (qbo-api.md section 13).

        The merged customer's invoices and payments move to the survivor, each with a new
        SyncToken and LastUpdatedTime (so CDC reports them) and an Update event. The merged
        customer is gone: a read is 610 and CDC reports it ``status: Deleted``. The survivor's
        Balance is recomputed, and one ``Merge`` event names it, with the merged customer's
        Id as ``deletedId``. UNCONFIRMED: the survivor gets a new SyncToken and
        LastUpdatedTime too, so a client holding the old one gets 5010. Raises the faults of
        ``_merge_pair``.
        """
        source, target = self._merge_pair(str(from_id), str(into_id))
        ts = self.clock.time()
        ref = {"value": target["Id"], "name": target["DisplayName"]}
        for entity in ("Invoice", "Payment"):
            for row in list(self.realm.objects[entity].values()):
                if (row.get("CustomerRef") or {}).get("value") == source["Id"]:
                    moved = {**copy.deepcopy(row), "CustomerRef": dict(ref)}
                    self._stamp(moved, row, entity)
                    self._commit(entity, moved, "Update", ts)
        del self.realm.objects["Customer"][source["Id"]]
        self.realm.tombstones["Customer"][source["Id"]] = iso_seconds(ts)
        survivor = copy.deepcopy(target)
        self._stamp(survivor, target, "Customer")
        self.realm.objects["Customer"][target["Id"]] = survivor
        self._refresh_customer_balance(target["Id"])
        self.events.append(("Customer", target["Id"], "Merge", iso_utc(ts), source["Id"]))
        return self.realm.get("Customer", target["Id"])

    def _merge_pair(self, from_id: str, into_id: str) -> tuple[dict, dict]:
        """The two customers of a merge, refused where QBO's UI refuses one.

        Raises 2020 without an Id, 2500 for an unknown customer, 610 for an inactive one,
        and 6000 for a customer merged into itself, one with sub-customers or two of
        different currencies (UNCONFIRMED codes; the UI shows these as messages).
        """
        source = self._ref("Customer", {"value": from_id}, "from")
        target = self._ref("Customer", {"value": into_id}, "into")
        if source["Id"] == target["Id"]:
            raise errors.business("A customer cannot be merged into itself.", "into")
        if any(
            (row.get("ParentRef") or {}).get("value") == source["Id"]
            for row in self.realm.objects["Customer"].values()
        ):
            raise errors.business(
                f"{source['DisplayName']} has sub-customers; move them before merging it.",
                "from",
            )
        home = self._home_currency()
        currencies = {(c.get("CurrencyRef") or {}).get("value") or home for c in (source, target)}
        if len(currencies) > 1:
            raise errors.business("Customers with different currencies cannot be merged.", "into")
        return source, target

    # -- Item -------------------------------------------------------------------------

    def _normalize_item(self, data: dict, existing: dict | None, include) -> tuple:
        out = dict(data)
        name = str(out.get("Name") or "").strip()
        if not name:
            raise errors.required("Name")
        out["Name"] = name
        self._check_length(out, "Name", 100)
        self._check_length(out, "Sku", 100)
        self._check_length(out, "Description", 4000)
        self._check_length(out, "PurchaseDesc", 4000)
        self._check_name_chars(out, ("Name",))
        # UNCONFIRMED default: an item created without Type is NonInventory, QBO's
        # "non-inventory product".
        item_type = out.get("Type") or "NonInventory"
        if item_type not in ITEM_TYPES:
            raise errors.unsupported_property(
                "Type", "Item", f"Property Name:Type unsupported value:{item_type}"
            )
        out["Type"] = item_type
        if item_type == "Group":
            out["ItemGroupDetail"] = self._bundle_detail(out.get("ItemGroupDetail"))
            # UNCONFIRMED default: QBO's bundle form starts with "Display bundle components
            # when printing or sending transactions" unticked.
            out.setdefault("PrintGroupedItems", False)
        if item_type in ITEM_TYPES_WITH_INCOME:
            income = self._ref("Account", out.get("IncomeAccountRef"), "IncomeAccountRef")
            out["IncomeAccountRef"] = {"value": income["Id"], "name": income["Name"]}
        for key in ("ExpenseAccountRef", "AssetAccountRef"):
            needed = item_type == "Inventory"
            # ExpenseAccountRef (COGS) being strictly required for Inventory is UNCONFIRMED;
            # QBO's UI cannot save an inventory item without it, so the API refuses too.
            account = self._ref("Account", out.get(key), key, needed=needed)
            if account is not None:
                out[key] = {"value": account["Id"], "name": account["Name"]}
        if item_type == "Inventory":
            if out.get("TrackQtyOnHand") is not True:
                raise errors.business(
                    "TrackQtyOnHand must be true for an inventory item.", "TrackQtyOnHand"
                )
            if out.get("QtyOnHand") is None:
                raise errors.required("QtyOnHand")
            money(out["QtyOnHand"], "QtyOnHand")
            if not out.get("InvStartDate"):
                raise errors.required(
                    "InvStartDate", "As of date for initial quantity on hand is required."
                )
            self._date(out["InvStartDate"], "InvStartDate")
        else:
            out.setdefault("TrackQtyOnHand", False)
        if isinstance(out.get("SalesTaxCodeRef"), dict):
            value = str(out["SalesTaxCodeRef"].get("value", ""))
            if value not in ("TAX", "NON"):
                self._ref("TaxCode", out["SalesTaxCodeRef"], "SalesTaxCodeRef")
        for key in ("UnitPrice", "PurchaseCost"):
            if key in out:
                money(out[key], key)
        out.setdefault("UnitPrice", 0)
        out.setdefault("Taxable", False)
        operation = self._activation("Item", out, existing, "Name")
        parent = self._ref("Item", out.get("ParentRef"), "ParentRef", needed=False)
        out["SubItem"] = parent is not None
        if parent is not None:
            out["FullyQualifiedName"] = f"{parent['FullyQualifiedName']}:{out['Name']}"
            out["Level"] = int(parent.get("Level", 0)) + 1
        else:
            out["FullyQualifiedName"] = out["Name"]
            out.pop("Level", None)
        # QBO also uses 6240 for a duplicate product/service name ("Duplicate Name Exists").
        self._unique(
            "Item", "FullyQualifiedName", out["FullyQualifiedName"], existing and existing["Id"]
        )
        return out, operation

    def _bundle_detail(self, detail: object) -> dict:
        """A bundle's components: active products or services, each with a quantity.

        UNCONFIRMED: a bundle needs at least one component (QBO's form cannot save an empty
        one), a component sent without Qty counts once, and the faults are QBO's generic
        required (2020) and business validation (6000) ones.
        """
        entries = detail.get("ItemGroupLine") if isinstance(detail, dict) else None
        if not isinstance(entries, list) or not entries:
            raise errors.required("ItemGroupDetail.ItemGroupLine")
        element = "ItemGroupDetail.ItemGroupLine"
        components = []
        for entry in entries:
            entry = entry if isinstance(entry, dict) else {}
            item = self._ref("Item", entry.get("ItemRef"), f"{element}.ItemRef")
            if item.get("Type") in NOT_IN_BUNDLE:
                raise errors.business(
                    f"{item['Name']} is a {item['Type'].lower()}; a bundle can hold only "
                    "products and services.",
                    f"{element}.ItemRef",
                )
            qty = money(entry.get("Qty", 1), f"{element}.Qty")
            if qty <= 0:
                raise errors.business(
                    "The quantity of a bundle component must be more than zero.", f"{element}.Qty"
                )
            components.append(
                {"ItemRef": {"value": item["Id"], "name": item["Name"]}, "Qty": plain_number(qty)}
            )
        return {"ItemGroupLine": components}

    # -- Account ----------------------------------------------------------------------

    def _normalize_account(self, data: dict, existing: dict | None, include) -> tuple:
        out = dict(data)
        name = str(out.get("Name") or "").strip()
        if not name:
            raise errors.required("Name")
        out["Name"] = name
        self._check_length(out, "Name", 100)
        self._check_length(out, "Description", 4000)
        if '"' in name or ":" in name:
            raise errors.business("Account name cannot contain a double quote or a colon.", "Name")
        if ":" in str(out.get("AcctNum", "")):
            raise errors.business("Account number cannot contain a colon.", "AcctNum")
        account_type = out.get("AccountType")
        subtype = out.get("AccountSubType")
        if not account_type and subtype in SUBTYPE_TO_TYPE:
            account_type = SUBTYPE_TO_TYPE[subtype]
        if not account_type:
            raise errors.validation(
                "6010",
                "Invalid account type",
                "You must select an account type or a detail type (AccountSubType).",
                "AccountType",
            )
        if account_type not in ACCOUNT_TYPES:
            raise errors.unsupported_property(
                "AccountType",
                "Account",
                f"Property Name:AccountType unsupported value:{account_type}",
            )
        classification, default_subtype = ACCOUNT_TYPES[account_type]
        out["AccountType"] = account_type
        out["AccountSubType"] = subtype or default_subtype
        out["Classification"] = classification
        operation = self._activation("Account", out, existing, "Name")
        parent = self._ref("Account", out.get("ParentRef"), "ParentRef", needed=False)
        out["SubAccount"] = parent is not None
        out["FullyQualifiedName"] = (
            f"{parent['FullyQualifiedName']}:{out['Name']}" if parent else out["Name"]
        )
        out.setdefault("CurrentBalance", 0)
        out.setdefault("CurrentBalanceWithSubAccounts", out["CurrentBalance"])
        self._currency(out)
        self._unique(
            "Account", "FullyQualifiedName", out["FullyQualifiedName"], existing and existing["Id"]
        )
        return out, operation

    # -- CompanyInfo / Preferences ----------------------------------------------------

    def _normalize_companyinfo(self, data: dict, existing: dict | None, include) -> tuple:
        out = dict(data)
        if not str(out.get("CompanyName") or "").strip():
            raise errors.required("CompanyName")
        return out, None

    def _normalize_preferences(self, data: dict, existing: dict | None, include) -> tuple:
        sales = data.get("SalesFormsPrefs") or {}
        flag = sales.get(TAX_AFTER_DISCOUNT_PREF)
        if flag is not None and not isinstance(flag, bool):
            raise errors.unsupported_property(
                f"SalesFormsPrefs.{TAX_AFTER_DISCOUNT_PREF}",
                "Preferences",
                f"Property Name:{TAX_AFTER_DISCOUNT_PREF} must be true or false",
            )
        return dict(data), None

    def _tax_after_discount(self) -> bool:
        """The company's default for an invoice's ApplyTaxAfterDiscount (discount before
        tax); off unless the preference says otherwise."""
        sales = self.realm.singleton("Preferences").get("SalesFormsPrefs") or {}
        return sales.get(TAX_AFTER_DISCOUNT_PREF) is True

    # -- Invoice ----------------------------------------------------------------------

    def _normalize_invoice(self, data: dict, existing: dict | None, include) -> tuple:
        out = dict(data)
        customer = self._ref("Customer", out.get("CustomerRef"), "CustomerRef")
        out["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        txn_date = self._date(out.get("TxnDate"), "TxnDate") or self.clock.today()
        out["TxnDate"] = txn_date.isoformat()
        # Without a SalesTermRef the sandbox's default terms (Net 30) set the due date.
        due = self._date(out.get("DueDate"), "DueDate") or txn_date + timedelta(days=30)
        out["DueDate"] = due.isoformat()
        self._check_length(out, "PrivateNote", 4000)
        if isinstance(out.get("CustomerMemo"), dict):
            self._check_length(out["CustomerMemo"], "value", 1000)

        if out.get("ApplyTaxAfterDiscount") is None:
            out["ApplyTaxAfterDiscount"] = self._tax_after_discount()
        lines = out.get("Line")
        if not isinstance(lines, list):
            raise errors.required("Line")
        new_lines, subtotal, taxable = self._sales_lines(lines, existing, txn_date)
        if not any(line["DetailType"] != "SubTotalLineDetail" for line in new_lines):
            raise errors.required("Line")
        discount = Decimal(0)
        for line in new_lines:
            if line["DetailType"] != "DiscountLineDetail":
                continue
            detail = line.setdefault("DiscountLineDetail", {})
            if detail.get("PercentBased") and detail.get("DiscountPercent") is not None:
                amount = cents(subtotal * money(detail["DiscountPercent"], "DiscountPercent") / 100)
            else:
                if line.get("Amount") is None:
                    raise errors.required("Line.Amount")
                amount = cents(money(line["Amount"], "Line.Amount"))
                detail.setdefault("PercentBased", False)
            line["Amount"] = wire_number(amount)
            discount += amount
        if discount and out.get("ApplyTaxAfterDiscount") and subtotal:
            taxable = cents(taxable * (subtotal - discount) / subtotal)
        new_lines.append(
            {
                "Amount": wire_number(subtotal),
                "DetailType": "SubTotalLineDetail",
                "SubTotalLineDetail": {},
            }
        )
        out["Line"] = new_lines

        total_tax = Decimal(0)
        tax_detail = dict(out.get("TxnTaxDetail") or {})
        code = self._ref("TaxCode", tax_detail.get("TxnTaxCodeRef"), "TxnTaxCodeRef", needed=False)
        tax_lines = []
        if code is not None:
            tax_detail["TxnTaxCodeRef"] = {"value": code["Id"]}
            rate_list = (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []
            for rate_detail in rate_list:
                rate_id = str((rate_detail.get("TaxRateRef") or {}).get("value", ""))
                rate = self.realm.get("TaxRate", rate_id)
                if rate is None:
                    continue
                percent = money(rate.get("RateValue", 0), "RateValue")
                amount = cents(taxable * percent / 100)
                total_tax += amount
                tax_lines.append(
                    {
                        "Amount": wire_number(amount),
                        "DetailType": "TaxLineDetail",
                        "TaxLineDetail": {
                            "TaxRateRef": {"value": rate_id},
                            "PercentBased": True,
                            "TaxPercent": float(percent),
                            "NetAmountTaxable": wire_number(taxable),
                        },
                    }
                )
        else:
            tax_detail.pop("TxnTaxCodeRef", None)
        tax_detail["TotalTax"] = wire_number(total_tax)
        if tax_lines:
            tax_detail["TaxLine"] = tax_lines
        else:
            tax_detail.pop("TaxLine", None)
        out["TxnTaxDetail"] = tax_detail

        self._doc_number(out, existing, include)

        total = subtotal - discount + total_tax
        applied = self._applied(existing["Id"]) if existing else Decimal(0)
        if total < applied:
            raise errors.business(
                "The invoice total cannot be less than the payments applied to it."
            )
        out["TotalAmt"] = wire_number(total)
        out["Balance"] = wire_number(total - applied)
        links = self._payment_links(existing["Id"]) if existing else []
        if links:
            out["LinkedTxn"] = links
        else:
            out.pop("LinkedTxn", None)
        for key in ("HomeTotalAmt", "HomeBalance"):
            out.pop(key, None)
        if "BillAddr" not in out and customer.get("BillAddr"):
            out["BillAddr"] = copy.deepcopy(customer["BillAddr"])
        if "ShipAddr" not in out and customer.get("ShipAddr"):
            out["ShipAddr"] = copy.deepcopy(customer["ShipAddr"])
        if "BillEmail" not in out and (customer.get("PrimaryEmailAddr") or {}).get("Address"):
            out["BillEmail"] = {"Address": customer["PrimaryEmailAddr"]["Address"]}
        if out.get("CustomField"):
            out["CustomField"] = self._custom_fields(out["CustomField"])
        self._currency(out, customer)
        out.setdefault("EmailStatus", "NotSet")
        out.setdefault("PrintStatus", "NotSet")
        out.setdefault("AllowIPNPayment", False)
        out.setdefault("AllowOnlinePayment", False)
        out.setdefault("AllowOnlineCreditCardPayment", False)
        out.setdefault("AllowOnlineACHPayment", False)
        return out, None

    def _sales_lines(
        self, lines: list, existing: dict | None, txn_date: date
    ) -> tuple[list[dict], Decimal, Decimal]:
        """Validate and copy the client's lines; returns (lines, subtotal, taxable amount).

        A sent Line array replaces every stored line (UNCONFIRMED but widely reported); a
        line keeps its Id only when that Id exists on the stored invoice.
        """
        ids = LineIds(existing)
        subtotal = Decimal(0)
        taxable = Decimal(0)
        result: list[dict] = []
        line_num = 0
        for raw in lines:
            if not isinstance(raw, dict):
                raise errors.unsupported_property(
                    "Line", "Invoice", "Property Name:Line must hold objects"
                )
            kind = raw.get("DetailType")
            if not kind:
                raise errors.required("Line.DetailType")
            if kind == "SubTotalLineDetail":
                continue  # the server computes its own subtotal line
            if kind not in (
                "SalesItemLineDetail",
                "DiscountLineDetail",
                "DescriptionOnly",
                "GroupLineDetail",
            ):
                raise errors.unsupported_property(
                    "DetailType", "Line", f"Property Name:DetailType unsupported value:{kind}"
                )
            line = copy.deepcopy(raw)
            self._check_length(line, "Description", 4000)
            ids.assign(line)
            if kind == "SalesItemLineDetail":
                line_num += 1
                line["LineNum"] = line_num
                amount, is_taxable = self._sales_item_line(line, txn_date)
                subtotal += amount
                if is_taxable:
                    taxable += amount
            elif kind == "GroupLineDetail":
                amount, group_taxable = self._group_line(line, txn_date, ids)
                subtotal += amount
                taxable += group_taxable
            elif kind == "DescriptionOnly":
                line_num += 1
                line["LineNum"] = line_num
                line.setdefault("DescriptionLineDetail", line.pop("DescriptionOnly", {}) or {})
            result.append(line)
        return result, subtotal, taxable

    def _group_line(self, line: dict, txn_date: date, ids: LineIds) -> tuple[Decimal, Decimal]:
        """A bundle line; returns (amount, taxable amount) of its components.

        Components sent by the client are kept as sent and checked as sales lines; without
        them the server expands the Group item's components for ``Quantity`` bundles, each
        with its own line Id. The bundle's amount is the sum of its components (qbo-api.md
        section 13; JSON shape UNCONFIRMED beyond the XSD). UNCONFIRMED: a sent component
        keeps the Id it carries when the stored invoice has it (else it gets a new one), and
        one sent without an Id stays without, as the emulator has always kept them.
        """
        detail = line.get("GroupLineDetail")
        if not isinstance(detail, dict):
            detail = line["GroupLineDetail"] = {}
        element = "Line.GroupLineDetail.GroupItemRef"
        bundle = self._ref("Item", detail.get("GroupItemRef"), element)
        if bundle.get("Type") != "Group":
            raise errors.business(
                f"{bundle['Name']} is not a bundle: GroupItemRef must refer to an item of "
                "Type Group.",
                element,
            )
        detail["GroupItemRef"] = {"value": bundle["Id"], "name": bundle["Name"]}
        # UNCONFIRMED: a bundle line without Quantity counts one bundle.
        quantity = money(detail.setdefault("Quantity", 1), "Line.GroupLineDetail.Quantity")
        expanded = not detail.get("Line")
        parts = self._bundle_parts(bundle, quantity) if expanded else detail["Line"]
        amount = taxable = Decimal(0)
        for part in parts:
            if not isinstance(part, dict) or part.get("DetailType") != "SalesItemLineDetail":
                raise errors.unsupported_property(
                    "DetailType",
                    "GroupLineDetail.Line",
                    "A bundle holds product or service lines only",
                )
            if expanded or part.get("Id") not in (None, ""):
                ids.assign(part)
            part_amount, part_taxable = self._sales_item_line(part, txn_date)
            amount += part_amount
            if part_taxable:
                taxable += part_amount
        detail["Line"] = parts
        line["Amount"] = wire_number(amount)
        return amount, taxable

    def _bundle_parts(self, bundle: dict, quantity: Decimal) -> list[dict]:
        """The component lines QBO writes for ``quantity`` of a bundle: each component's Qty
        times ``quantity`` at the component item's UnitPrice, rounded half up to the cent.

        UNCONFIRMED: the lines carry the component item's Description, as QBO's form fills it.
        """
        parts = []
        for entry in (bundle.get("ItemGroupDetail") or {}).get("ItemGroupLine") or []:
            item_id = str((entry.get("ItemRef") or {}).get("value", ""))
            item = self.realm.get("Item", item_id) or {}
            qty = money(entry.get("Qty", 1), "Qty") * quantity
            price = money(item.get("UnitPrice", 0), "UnitPrice")
            part = {
                "Amount": wire_number(cents(qty * price)),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": item_id},
                    "Qty": plain_number(qty),
                    "UnitPrice": plain_number(price),
                },
            }
            if item.get("Description"):
                part["Description"] = item["Description"]
            parts.append(part)
        return parts

    def _sales_item_line(self, line: dict, txn_date: date) -> tuple[Decimal, bool]:
        detail = line.get("SalesItemLineDetail")
        if not isinstance(detail, dict):
            detail = line["SalesItemLineDetail"] = {}
        if line.get("Amount") is None:
            raise errors.required("Line.Amount")
        amount = cents(money(line["Amount"], "Line.Amount"))
        if len(str(amount).replace("-", "").split(".")[0]) > 15:
            raise errors.length("Line.Amount", 15, len(str(amount)))
        item = self._ref(
            "Item", detail.get("ItemRef"), "Line.SalesItemLineDetail.ItemRef", needed=False
        )
        if item is None:
            # qbo-api.md: a SalesItemLineDetail without ItemRef is a documentation line whose
            # Amount is ignored.
            line["Amount"] = 0.0
            return Decimal(0), False
        detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
        if item.get("Type") == "Category":
            raise errors.business("A category cannot be used on a transaction line.")
        qty = detail.get("Qty")
        price = detail.get("UnitPrice")
        if qty is not None and price is not None:
            expected = cents(money(qty, "Qty") * money(price, "UnitPrice"))
            if expected != amount:
                raise errors.amount_mismatch(line["Amount"])
        elif qty is not None and money(qty, "Qty") != 0:
            detail["UnitPrice"] = float(amount / money(qty, "Qty"))
        if item.get("Type") == "Inventory":
            if qty is None:
                raise errors.validation(
                    "6520",
                    "Quantity required for inventory item",
                    "Quantity required for inventory item",
                    "Line.SalesItemLineDetail.Qty",
                )
            start = self._date(item.get("InvStartDate"), "InvStartDate")
            if start and txn_date < start:
                raise errors.validation(
                    "6270",
                    "Transaction date is prior to start date for inventory item",
                    f"Transaction date is prior to start date for inventory item {item['Name']}",
                    "TxnDate",
                )
        tax_ref = detail.get("TaxCodeRef")
        if isinstance(tax_ref, dict) and tax_ref.get("value") not in (None, ""):
            value = str(tax_ref["value"])
            if value not in ("TAX", "NON"):
                raise errors.invalid_tax_code(value)
        else:
            # Without a line code QBO falls back to the item's taxability.
            value = "TAX" if item.get("Taxable") else "NON"
        detail["TaxCodeRef"] = {"value": value}
        line["Amount"] = wire_number(amount)
        return amount, value == "TAX"

    def _doc_number(self, out: dict, existing: dict | None, include) -> None:
        prefs = self.realm.singleton("Preferences")
        custom = bool((prefs.get("SalesFormsPrefs") or {}).get("CustomTxnNumbers"))
        doc = out.get("DocNumber")
        used = {
            str(row.get("DocNumber")): row["Id"]
            for row in self.realm.objects["Invoice"].values()
            if row.get("DocNumber") and (existing is None or row["Id"] != existing["Id"])
        }
        if doc == "AUTO_GENERATE" or (doc in (None, "") and existing is None and not custom):
            number = self.realm.next_doc_number
            while str(number) in used:
                number += 1
            self.realm.next_doc_number = number + 1
            out["DocNumber"] = str(number)
            return
        if doc in (None, ""):
            out.pop("DocNumber", None)
            return
        doc = str(doc)
        out["DocNumber"] = doc
        if len(doc) > 21:
            raise errors.length("DocNumber", 21, len(doc))
        if doc in used and "allowduplicatedocnum" not in include:
            raise errors.duplicate_doc_number(doc, "Invoice", used[doc])
        if doc.isdigit() and int(doc) >= self.realm.next_doc_number:
            self.realm.next_doc_number = int(doc) + 1

    def _custom_fields(self, fields: list) -> list:
        """Keep only fields whose DefinitionId is one of the company's string fields.

        UNCONFIRMED: QBO silently drops values for undefined DefinitionIds.
        """
        names = custom_field_names(self.realm.singleton("Preferences"))
        kept = []
        for field in fields:
            if not isinstance(field, dict):
                continue
            def_id = str(field.get("DefinitionId", ""))
            if def_id in names:
                entry = {"DefinitionId": def_id, "Name": names[def_id], "Type": "StringType"}
                if field.get("StringValue") not in (None, ""):
                    entry["StringValue"] = str(field["StringValue"])[:31]
                kept.append(entry)
        return kept

    # -- Payment ----------------------------------------------------------------------

    def _normalize_payment(self, data: dict, existing: dict | None, include) -> tuple:
        out = dict(data)
        customer = self._ref("Customer", out.get("CustomerRef"), "CustomerRef")
        out["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        if out.get("TotalAmt") is None:
            raise errors.required("TotalAmt")
        total = cents(money(out["TotalAmt"], "TotalAmt"))
        if total < 0:
            raise errors.business("The payment amount cannot be negative.", "TotalAmt")
        txn_date = self._date(out.get("TxnDate"), "TxnDate") or self.clock.today()
        out["TxnDate"] = txn_date.isoformat()
        own_id = existing["Id"] if existing else None
        applied_total = Decimal(0)
        per_invoice: dict[str, Decimal] = {}
        lines = []
        for raw in out.get("Line") or []:
            if not isinstance(raw, dict):
                continue
            if raw.get("Amount") is None:
                raise errors.required("Line.Amount")
            amount = cents(money(raw["Amount"], "Line.Amount"))
            links = raw.get("LinkedTxn") or []
            if len(links) != 1:
                raise errors.business("Each payment line must be linked to exactly one invoice.")
            link = links[0]
            if link.get("TxnType") != "Invoice":
                raise errors.business(
                    f"Linking a payment to a {link.get('TxnType')} is not supported here."
                )
            txn_id = str(link.get("TxnId", ""))
            invoice = self.realm.get("Invoice", txn_id)
            if invoice is None:
                raise errors.invalid_reference("Line.LinkedTxn.TxnId", txn_id)
            if invoice["CustomerRef"]["value"] != customer["Id"]:
                raise errors.business(
                    f"Invoice {txn_id} belongs to another customer than this payment."
                )
            per_invoice[txn_id] = per_invoice.get(txn_id, Decimal(0)) + amount
            applied_total += amount
            line = copy.deepcopy(raw)
            line["Amount"] = wire_number(amount)
            line["LinkedTxn"] = [{"TxnId": txn_id, "TxnType": "Invoice"}]
            lines.append(line)
        if applied_total > total:
            raise errors.business(
                "The amounts applied to invoices exceed the payment's TotalAmt.", "TotalAmt"
            )
        for txn_id, amount in per_invoice.items():
            invoice = self.realm.get("Invoice", txn_id)
            open_balance = money(invoice.get("TotalAmt", 0)) - self._applied(txn_id, own_id)
            if amount > open_balance:
                raise errors.business(
                    f"The payment applied to invoice {txn_id} exceeds its open balance."
                )
        out["Line"] = lines
        out["TotalAmt"] = wire_number(total)
        out["UnappliedAmt"] = wire_number(total - applied_total)
        deposit = self._ref(
            "Account", out.get("DepositToAccountRef"), "DepositToAccountRef", needed=False
        )
        if deposit is None:
            deposit = next(
                (
                    a
                    for a in self.realm.objects["Account"].values()
                    if a.get("AccountSubType") == "UndepositedFunds" and a.get("Active", True)
                ),
                None,
            )
        if deposit is not None:
            out["DepositToAccountRef"] = {"value": deposit["Id"]}
        out.setdefault("ProcessPayment", False)
        self._currency(out)
        return out, None

    def _applied(self, invoice_id: str, exclude_payment: str | None = None) -> Decimal:
        total = Decimal(0)
        for payment in self.realm.objects["Payment"].values():
            if payment["Id"] == exclude_payment:
                continue
            for line in payment.get("Line", []):
                for link in line.get("LinkedTxn", []):
                    if link.get("TxnId") == invoice_id and link.get("TxnType") == "Invoice":
                        total += money(line.get("Amount", 0))
        return total

    def _payment_links(self, invoice_id: str) -> list[dict]:
        # UNCONFIRMED: an invoice lists its payments as LinkedTxn with TxnType "Payment".
        return [
            {"TxnId": payment["Id"], "TxnType": "Payment"}
            for payment in self.realm.objects["Payment"].values()
            if invoice_id in _linked_invoice_ids(payment)
        ]

    def _refresh_invoices(self, invoice_ids: set[str], ts: float) -> None:
        """Recompute Balance and LinkedTxn of invoices touched by a payment change.

        The invoice really changes (Balance), so its SyncToken and LastUpdatedTime move on,
        which is why a client holding an old SyncToken gets 5010 after a payment.
        """
        for invoice_id in sorted(invoice_ids):
            invoice = self.realm.get("Invoice", invoice_id)
            if invoice is None:
                continue
            balance = money(invoice.get("TotalAmt", 0)) - self._applied(invoice_id)
            links = self._payment_links(invoice_id)
            if (
                money(invoice.get("Balance", 0)) == balance
                and invoice.get("LinkedTxn", []) == links
            ):
                continue
            updated = copy.deepcopy(invoice)
            updated["Balance"] = wire_number(balance)
            if links:
                updated["LinkedTxn"] = links
            else:
                updated.pop("LinkedTxn", None)
            self._stamp(updated, invoice, "Invoice")
            self._commit("Invoice", updated, "Update", ts)
            self._refresh_customer_balance(invoice["CustomerRef"]["value"])

    def _unlink_payments(self, invoice_id: str, ts: float) -> None:
        """Detach payments from an invoice being voided or deleted; the money becomes
        unapplied credit on the payment, as QBO's UI warns it will."""
        for payment in list(self.realm.objects["Payment"].values()):
            if invoice_id not in _linked_invoice_ids(payment):
                continue
            updated = copy.deepcopy(payment)
            updated["Line"] = [
                line
                for line in updated.get("Line", [])
                if all(link.get("TxnId") != invoice_id for link in line.get("LinkedTxn", []))
            ]
            applied = sum((money(line.get("Amount", 0)) for line in updated["Line"]), Decimal(0))
            updated["UnappliedAmt"] = wire_number(money(updated.get("TotalAmt", 0)) - applied)
            self._stamp(updated, payment, "Payment")
            self._commit("Payment", updated, "Update", ts)

    def _refresh_customer_balance(self, customer_id: str | None) -> None:
        # Customer.Balance is read-only and follows its invoices; QBO does not treat this as
        # an edit of the customer, so SyncToken stays (UNCONFIRMED).
        customer = self.realm.get("Customer", customer_id) if customer_id else None
        if customer is None:
            return
        balance = sum(
            (
                money(row.get("Balance", 0))
                for row in self.realm.objects["Invoice"].values()
                if row.get("CustomerRef", {}).get("value") == customer_id
            ),
            Decimal(0),
        )
        if money(customer.get("Balance", 0)) != balance:
            updated = dict(customer)
            updated["Balance"] = wire_number(balance)
            updated["BalanceWithJobs"] = wire_number(balance)
            self.realm.objects["Customer"][customer_id] = updated

    def _adjust_stock(self, old_lines: list | None, new_lines: list | None) -> None:
        """Move QtyOnHand of inventory items by what an invoice change sold or gave back.

        UNCONFIRMED: QBO changes QtyOnHand without bumping the item's SyncToken.
        """
        delta: dict[str, Decimal] = {}
        for sign, lines in ((1, old_lines), (-1, new_lines)):
            for line in all_lines(lines):
                detail = line.get("SalesItemLineDetail") or {}
                item_id = (detail.get("ItemRef") or {}).get("value")
                if item_id and detail.get("Qty") is not None:
                    delta[item_id] = delta.get(item_id, Decimal(0)) + sign * money(detail["Qty"])
        for item_id, change in delta.items():
            item = self.realm.get("Item", item_id)
            if item is None or item.get("Type") != "Inventory" or not change:
                continue
            updated = dict(item)
            qty = money(item.get("QtyOnHand", 0)) + change
            updated["QtyOnHand"] = int(qty) if qty == int(qty) else float(qty)
            self.realm.objects["Item"][item_id] = updated


def _linked_invoice_ids(payment: dict | None) -> set[str]:
    if not payment:
        return set()
    return {
        str(link.get("TxnId"))
        for line in payment.get("Line", [])
        for link in line.get("LinkedTxn", [])
        if link.get("TxnType") == "Invoice"
    }


def _merge_preference_groups(existing: dict, payload: dict) -> dict:
    """A sparse Preferences update changes only the settings each sent group carries.

    UNCONFIRMED: Intuit's sample Preferences update sends a few SalesFormsPrefs settings
    alone, which implies the others are kept.
    """
    merged = {}
    for key, value in payload.items():
        stored = existing.get(key)
        both = isinstance(value, dict) and isinstance(stored, dict)
        merged[key] = {**stored, **value} if both else value
    return merged


def custom_field_names(preferences: dict) -> dict[str, str]:
    """DefinitionId → name of the enabled string custom fields (SalesCustomNameN)."""
    names: dict[str, str] = {}
    enabled: dict[str, bool] = {}
    groups = (preferences.get("SalesFormsPrefs") or {}).get("CustomField") or []
    for group in groups:
        for field in (group or {}).get("CustomField") or []:
            name = str(field.get("Name", ""))
            suffix = name[-1:]
            if name.startswith("SalesFormsPrefs.SalesCustomName") and field.get("StringValue"):
                names[suffix] = field["StringValue"]
            elif name.startswith("SalesFormsPrefs.UseSalesCustom"):
                enabled[suffix] = bool(field.get("BooleanValue"))
    return {k: v for k, v in names.items() if enabled.get(k, True)}


def is_name_list(entity: str) -> bool:
    return entity in NAME_LISTS
