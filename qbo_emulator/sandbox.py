"""The sandbox company each emulated realm starts with.

Intuit seeds every US sandbox with the same sample company, "Craig's Design and Landscaping
Services" (qbo-api.md §11): its customers, items, chart of accounts, sales-tax codes
and a few invoices. `build_company()` returns that data in QBO's JSON wire shape (§0, §8), so the
emulator's store can serve it as it is. Only the standard library is used; nothing here touches
Django.

Choices made where Intuit's sample differs from call to call or is undocumented:
- Ids follow the sample company where qbo-api.md lists them (customers 1 and 6, items 1, 2, 4
  and 11, accounts 33, 35, 79, 80, 81, TaxCode "2" California, custom field DefinitionId 1);
  the rest are plausible. Transactions share one Id sequence, as QBO's do.
- Every object has SyncToken "0", including the invoice a payment was applied to.
- Refs carry a `name` where QBO sends one; tax refs (line `TaxCodeRef`, `TxnTaxCodeRef`,
  `TaxLine` `TaxRateRef`), `AgencyRef` and `DefaultTerms` carry only a `value`, as QBO sends
  them. TaxAgency and Term objects are not part of the data set.
- `CurrentBalance` is kept for balance-sheet accounts (A/R, Undeposited Funds and Inventory
  Asset derived from the transactions below) and is 0 for income and expense accounts, as QBO
  reports them.
- All realms get the same sample data, as Intuit's sandboxes do; only the company name differs.
- Timestamps are in US Pacific time (the sandbox's time zone), with the offset of the day.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["DEFAULT_REALMS", "ENTITY_NAMES", "build_company", "build_extras"]

DEFAULT_REALMS: list[tuple[str, str]] = [
    ("9341453050298743", "Craig's Design and Landscaping Services"),
    ("9341453050298744", "Sandbox Company_US_2"),
]

# Keys of the dict `build_company()` returns, in the order dependencies are created.
ENTITY_NAMES: tuple[str, ...] = (
    "CompanyInfo",
    "Preferences",
    "Account",
    "TaxRate",
    "TaxCode",
    "Customer",
    "Item",
    "Invoice",
    "Payment",
)

_CENT = Decimal("0.01")
_USD = {"value": "USD", "name": "United States Dollar"}
_FIRST_TXN_ID = 130
_FIRST_DOC_NUMBER = 1001
_EXTRA_ADDRESS_IDS = 500  # build_extras() addresses start after this
_TERMS_DAYS = 30  # DefaultTerms "3" is Net 30 in the sample company.
_CUSTOMER_MEMO = "Thank you for your business and have a great day!"

_CLASSIFICATION = {
    "Bank": "Asset",
    "Accounts Receivable": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Other Current Liability": "Liability",
    "Long Term Liability": "Liability",
    "Equity": "Equity",
    "Income": "Revenue",
    "Other Income": "Revenue",
    "Cost of Goods Sold": "Expense",
    "Expense": "Expense",
    "Other Expense": "Expense",
}

# Id, Name, AccountType, AccountSubType, parent Id, active, fixed balance (None = derived or 0).
_ACCOUNTS: tuple[tuple[str, str, str, str, str | None, bool, str | None], ...] = (
    ("35", "Checking", "Bank", "Checking", None, True, "1201.00"),
    ("36", "Savings", "Bank", "Savings", None, True, "800.00"),
    (
        "84",
        "Accounts Receivable (A/R)",
        "Accounts Receivable",
        "AccountsReceivable",
        None,
        True,
        None,
    ),
    ("81", "Inventory Asset", "Other Current Asset", "Inventory", None, True, None),
    ("4", "Undeposited Funds", "Other Current Asset", "UndepositedFunds", None, True, None),
    ("33", "Accounts Payable (A/P)", "Accounts Payable", "AccountsPayable", None, True, "1602.67"),
    ("34", "Opening Balance Equity", "Equity", "OpeningBalanceEquity", None, True, "-9337.50"),
    ("2", "Retained Earnings", "Equity", "RetainedEarnings", None, True, None),
    ("1", "Services", "Income", "ServiceFeeIncome", None, True, None),
    ("82", "Design income", "Income", "ServiceFeeIncome", None, True, None),
    ("45", "Landscaping Services", "Income", "OtherPrimaryIncome", None, True, None),
    ("46", "Job Materials", "Income", "OtherPrimaryIncome", "45", True, None),
    ("79", "Sales of Product Income", "Income", "SalesOfProductIncome", None, True, None),
    ("86", "Discounts given", "Income", "DiscountsRefundsGiven", None, True, None),
    ("80", "Cost of Goods Sold", "Cost of Goods Sold", "SuppliesMaterialsCogs", None, True, None),
    ("7", "Advertising", "Expense", "AdvertisingPromotional", None, True, None),
    ("20", "Supplies", "Expense", "SuppliesMaterials", None, True, None),
    ("17", "Rent or Lease", "Expense", "RentOrLeaseOfBuildings", None, True, None),
    # QBO renames an account it makes inactive, as it does customers (§8).
    ("16", "Travel (deleted)", "Expense", "Travel", None, False, None),
)
_DISCOUNT_ACCOUNT_ID = "86"
_AR_ACCOUNT_ID = "84"
_UNDEPOSITED_ACCOUNT_ID = "4"
_INVENTORY_ACCOUNT_ID = "81"

# Id, Name, RateValue (percent), AgencyRef value, agency name (for the Description).
_TAX_RATES: tuple[tuple[str, str, str, str, str], ...] = (
    ("1", "AZ State tax", "7.1", "1", "Arizona Dept. of Revenue"),
    ("2", "Tucson City", "0.5", "2", "Tucson City"),
    ("3", "California", "8", "3", "Board of Equalization"),
)
# Id, Name, Description, TaxRate Ids. Pseudo codes TAX/NON have no rates and TaxGroup false.
_TAX_CODES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("TAX", "TAX", "TAX", ()),
    ("NON", "NON", "NON", ()),
    ("2", "California", "California", ("3",)),
    ("3", "Tucson", "Tucson, AZ (state and city)", ("1", "2")),
)
_TAX_CODE_BY_STATE = {"CA": "2", "AZ": "3"}

# Id, DisplayName, GivenName, FamilyName, CompanyName, email, phone, (Line1, City, State, Zip).
_CUSTOMERS: tuple[tuple[str, str, str, str, str | None, str, str, tuple[str, ...]], ...] = (
    (
        "1",
        "Amy's Bird Sanctuary",
        "Amy",
        "Lauterbach",
        "Amy's Bird Sanctuary",
        "Birds@Intuit.com",
        "(650) 555-3311",
        ("4581 Finch St.", "Bayshore", "CA", "94326"),
    ),
    (
        "2",
        "Bill's Windsurf Shop",
        "Bill",
        "Lucchini",
        "Bill's Windsurf Shop",
        "Surf@Intuit.com",
        "(415) 444-6538",
        ("12 Ocean Dr.", "Half Moon Bay", "CA", "94213"),
    ),
    (
        "3",
        "Cool Cars",
        "Grace",
        "Pariente",
        "Cool Cars",
        "Cool_Cars@intuit.com",
        "(415) 555-9933",
        ("65 Ocean Dr.", "Half Moon Bay", "CA", "94213"),
    ),
    (
        "4",
        "Diego Rodriguez",
        "Diego",
        "Rodriguez",
        None,
        "Diego@Rodriguez.com",
        "(650) 555-4477",
        ("321 Channing", "Palo Alto", "CA", "94303"),
    ),
    (
        "5",
        "Dukes Basketball Camp",
        "Peter",
        "Dukes",
        "Dukes Basketball Camp",
        "Dukes_bball@intuit.com",
        "(520) 420-5638",
        ("25 Court St.", "Tucson", "AZ", "85719"),
    ),
    (
        "6",
        "Dylan Sollfrank",
        "Dylan",
        "Sollfrank",
        None,
        "Dylan@Sollfrank.com",
        "(650) 555-2222",
        ("1 Main St.", "Middlefield", "CA", "94303"),
    ),
)

# Id, Name, Type, Description, UnitPrice, Taxable, IncomeAccountRef Id,
# inventory (PurchaseCost, initial QtyOnHand) or None, NonInventory PurchaseCost or None.
_ITEMS: tuple[
    tuple[str, str, str, str, str, bool, str, tuple[str, int] | None, str | None], ...
] = (
    ("1", "Services", "Service", "", "0", False, "1", None, None),
    ("2", "Hours", "Service", "", "0", False, "1", None, None),
    ("4", "Design", "Service", "Custom Design", "75", False, "82", None, None),
    ("6", "Gardening", "Service", "Weekly Gardening Service", "35", False, "45", None, None),
    ("5", "Rock Fountain", "NonInventory", "Rock Fountain", "275", True, "79", None, "125"),
    ("11", "Pump", "Inventory", "Fountain Pump", "15", True, "79", ("10", 30), None),
    ("16", "Sprinkler Heads", "Inventory", "Sprinkler Heads", "2", True, "46", ("0.75", 40), None),
)
_COGS_ACCOUNT_ID = "80"
# The currency service's rates for the foreign currencies the sandbox knows, in USD per unit
# on the first day of a year (close to the market's; the rate of a day is the latest set on or
# before it): currency -> ((AsOfDate, Rate), ...).
_EXCHANGE_RATES: dict[str, tuple[tuple[str, str], ...]] = {
    "EUR": (
        ("2015-01-01", "1.2141"),
        ("2020-01-01", "1.1213"),
        ("2024-01-01", "1.1039"),
        ("2025-01-01", "1.0389"),
        ("2026-01-01", "1.1745"),
    ),
    "GBP": (
        ("2015-01-01", "1.5577"),
        ("2020-01-01", "1.3257"),
        ("2024-01-01", "1.2731"),
        ("2025-01-01", "1.2529"),
        ("2026-01-01", "1.3455"),
    ),
    "CAD": (
        ("2015-01-01", "0.8608"),
        ("2020-01-01", "0.7700"),
        ("2024-01-01", "0.7547"),
        ("2025-01-01", "0.6956"),
        ("2026-01-01", "0.7285"),
    ),
}
# Vendors: Id, DisplayName, CompanyName, email, phone, (Line1, City, State, Zip). Customers,
# vendors and employees share one Id sequence in QBO (the sample company's vendors start
# at 30); these Ids are plausible, not Intuit's.
_VENDORS: tuple[tuple[str, str, str, str, str, tuple[str, ...]], ...] = (
    (
        "30",
        "Books by Bessie",
        "Books by Bessie",
        "Books@Intuit.com",
        "(650) 555-7745",
        ("15 Main St.", "Palo Alto", "CA", "94303"),
    ),
    (
        "48",
        "Tania's Nursery",
        "Tania's Nursery",
        "plantqueen@taniasnursery.com",
        "(650) 555-5440",
        ("1111 Elm St.", "Middlefield", "CA", "94303"),
    ),
)
# Employees: Id, GivenName, FamilyName, EmployeeNumber, hired (days before the company).
_EMPLOYEES: tuple[tuple[str, str, str, str, int], ...] = (("55", "Emily", "Platt", "E-001", 400),)

# Bundles (Group items): Id, Name, Description, components of (Item Id, Qty).
_BUNDLES: tuple[tuple[str, str, str, tuple[tuple[str, int], ...]], ...] = (
    ("17", "Design Package", "Garden design package", (("4", 1), ("2", 3))),
)

# Customer Id, days before `now`, Crew #, lines of (Item Id, Qty, UnitPrice or None = item's).
_INVOICES: tuple[tuple[str, int, str, tuple[tuple[str, str, str | None], ...]], ...] = (
    ("1", 24, "102", (("4", "4", None), ("5", "1", None), ("11", "2", None))),
    ("2", 19, "103", (("6", "4", None), ("16", "10", None), ("1", "1", "50"))),
    # Taxable 321.00 at 0.5 % gives 1.605, which rounds half up to 1.61.
    ("5", 15, "104", (("2", "6", "30"), ("5", "1", None), ("11", "2", None), ("16", "8", None))),
    ("4", 12, "102", (("6", "3", None), ("11", "1", None))),
)
# Invoice index in _INVOICES, days before `now`, amount, check number.
_PAYMENT = (0, 10, "300.00", "1051")


def build_company(realm_id: str, *, company_name: str, now: dt.datetime) -> dict[str, Any]:
    """Build the sandbox company of one realm as QBO JSON objects.

    Returns a dict keyed by entity name (see `ENTITY_NAMES`): "CompanyInfo" and
    "Preferences" map to one object each, the others to lists. The output depends only on the
    arguments; MetaData times fall in the six weeks before `now` (a naive `now` is taken as
    UTC). Raises ValueError when `realm_id` is not a digit string, as Intuit's realm ids are.
    """
    if not realm_id.isdigit():
        raise ValueError(f"realm_id must be a string of digits, got {realm_id!r}")
    return _CompanyBuilder(company_name=company_name, now=now).build()


def build_extras(*, now: dt.datetime) -> dict[str, Any]:
    """What every emulated realm holds besides `build_company()`'s sample data.

    Returns {"Item": [...], "ExchangeRate": [...], "Vendor": [...], "Employee": [...]}: the
    sample company's bundles (Group items), the currency service's rates into USD, and a few
    of its vendors and employees. The bundles are kept apart from `build_company()`, whose
    items all carry the accounts their type requires (a rule its tests pin); a QBO bundle
    has no account of its own. ExchangeRate objects have no Id. Vendors and employees share
    the customers' name space, so their names differ from every customer's.
    """
    builder = _CompanyBuilder(company_name="", now=now)
    # Numbered after build_company()'s addresses, as address Ids are unique in a company.
    builder._address_ids = _EXTRA_ADDRESS_IDS
    builder.build_accounts()
    builder.build_items()
    return {
        "Item": builder.build_bundles(),
        "ExchangeRate": builder.build_exchange_rates(),
        "Vendor": builder.build_vendors(),
        "Employee": builder.build_employees(),
    }


def _money(value: Decimal) -> float:
    return float(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def _number(value: Decimal) -> int | float:
    """A quantity or rate as QBO prints it: integral values without a fraction."""
    return int(value) if value == value.to_integral_value() else float(value)


def _pacific_offset(moment: dt.datetime) -> dt.timedelta:
    """UTC offset of US Pacific time at `moment` (US daylight-saving rules since 2007)."""
    year = moment.year
    # Second Sunday of March, 02:00 PST (10:00 UTC), to first Sunday of November, 02:00 PDT.
    march = dt.datetime(year, 3, 8, 10, tzinfo=dt.UTC)
    dst_start = march + dt.timedelta(days=(6 - march.weekday()) % 7)
    november = dt.datetime(year, 11, 1, 9, tzinfo=dt.UTC)
    dst_end = november + dt.timedelta(days=(6 - november.weekday()) % 7)
    return dt.timedelta(hours=-7 if dst_start <= moment < dst_end else -8)


def _local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.timezone(_pacific_offset(moment)))


class _CompanyBuilder:
    def __init__(self, *, company_name: str, now: dt.datetime) -> None:
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        self.now = now.astimezone(dt.UTC).replace(microsecond=0)
        self.company_name = company_name
        self.created = self.now - dt.timedelta(days=42, hours=3)
        self._address_ids = 0
        self.accounts: dict[str, dict[str, Any]] = {}
        self.tax_rates: dict[str, dict[str, Any]] = {}
        self.tax_codes: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.invoices: list[dict[str, Any]] = []
        self.payments: list[dict[str, Any]] = []

    # Shared pieces

    def stamp(self, moment: dt.datetime) -> str:
        return _local(moment).isoformat()

    def date(self, moment: dt.datetime) -> str:
        return _local(moment).date().isoformat()

    def envelope(
        self, entity_id: str, created: dt.datetime, updated: dt.datetime | None = None
    ) -> dict[str, Any]:
        return {
            "domain": "QBO",
            "sparse": False,
            "Id": entity_id,
            "SyncToken": "0",
            "MetaData": {
                "CreateTime": self.stamp(created),
                "LastUpdatedTime": self.stamp(updated or created),
            },
        }

    def address(self, line1: str, city: str, state: str, postal_code: str) -> dict[str, str]:
        self._address_ids += 1
        return {
            "Id": str(self._address_ids),
            "Line1": line1,
            "City": city,
            "Country": "USA",
            "CountrySubDivisionCode": state,
            "PostalCode": postal_code,
        }

    def account_ref(self, account_id: str) -> dict[str, str]:
        return {"value": account_id, "name": self.accounts[account_id]["FullyQualifiedName"]}

    # Entities

    def build(self) -> dict[str, Any]:
        company_info = self.build_company_info()
        preferences = self.build_preferences()
        self.build_accounts()
        self.build_tax()
        self.build_customers()
        self.build_items()
        self.build_invoices()
        self.build_payment()
        self.derive_balances()
        return {
            "CompanyInfo": company_info,
            "Preferences": preferences,
            "Account": list(self.accounts.values()),
            "TaxRate": list(self.tax_rates.values()),
            "TaxCode": list(self.tax_codes.values()),
            "Customer": list(self.customers.values()),
            "Item": list(self.items.values()),
            "Invoice": self.invoices,
            "Payment": self.payments,
        }

    def build_company_info(self) -> dict[str, Any]:
        address = self.address("123 Sierra Way", "San Pablo", "CA", "87999")
        return {
            "CompanyName": self.company_name,
            "LegalName": self.company_name,
            "CompanyAddr": address,
            "CustomerCommunicationAddr": dict(address),
            "LegalAddr": dict(address),
            "PrimaryPhone": {"FreeFormNumber": "(650) 944-4444"},
            "CompanyStartDate": self.date(self.created),
            "FiscalYearStartMonth": "January",
            "Country": "US",
            "Email": {"Address": "noreply@quickbooks.com"},
            "CustomerCommunicationEmailAddr": {"Address": "noreply@quickbooks.com"},
            "SupportedLanguages": "en",
            "DefaultTimeZone": "America/Los_Angeles",
            "NameValue": [
                {"Name": "NeoEnabled", "Value": "true"},
                {"Name": "IndustryType", "Value": "Landscaping Services"},
                {"Name": "CompanyType", "Value": "Other"},
                {"Name": "SubscriptionStatus", "Value": "SUBSCRIBED"},
                {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
                {"Name": "PayrollFeature", "Value": "false"},
                {"Name": "AccountantFeature", "Value": "false"},
                {"Name": "ItemCategoriesFeature", "Value": "true"},
                {"Name": "AssignedTime", "Value": self.stamp(self.created)},
            ],
            **self.envelope("1", self.created),
        }

    def build_preferences(self) -> dict[str, Any]:
        def flag(name: str, value: bool) -> dict[str, Any]:
            return {"Name": f"SalesFormsPrefs.{name}", "Type": "BooleanType", "BooleanValue": value}

        return {
            "AccountingInfoPrefs": {
                "TrackDepartments": False,
                "DepartmentTerminology": "Location",
                "ClassTrackingPerTxn": False,
                "ClassTrackingPerTxnLine": False,
                "CustomerTerminology": "Customers",
            },
            "ProductAndServicesPrefs": {
                "ForSales": True,
                "ForPurchase": True,
                "QuantityWithPriceAndRate": True,
                "QuantityOnHand": True,
            },
            "SalesFormsPrefs": {
                # DefinitionId N on a transaction is SalesCustomNameN here (§8 Preferences).
                "CustomField": [
                    {
                        "CustomField": [
                            flag("UseSalesCustom3", False),
                            flag("UseSalesCustom2", False),
                            flag("UseSalesCustom1", True),
                        ]
                    },
                    {
                        "CustomField": [
                            {
                                "Name": "SalesFormsPrefs.SalesCustomName1",
                                "Type": "StringType",
                                "StringValue": "Crew #",
                            }
                        ]
                    },
                ],
                "CustomTxnNumbers": False,
                # Tax on the undiscounted amount: each invoice's ApplyTaxAfterDiscount
                # defaults to this (UNCONFIRMED name, see rules.TAX_AFTER_DISCOUNT_PREF).
                "ApplyTaxAfterDiscount": False,
                "AllowDeposit": False,
                "AllowDiscount": True,
                "DefaultDiscountAccount": _DISCOUNT_ACCOUNT_ID,
                "AllowEstimates": True,
                "AllowServiceDate": False,
                "AllowShipping": False,
                "DefaultTerms": {"value": "3"},
                "DefaultCustomerMessage": _CUSTOMER_MEMO,
                "ETransactionEnabledStatus": "NotApplicable",
                "IPNSupportEnabled": False,
                "UsingPriceLevels": False,
                "UsingProgressInvoicing": False,
            },
            "VendorAndPurchasesPrefs": {
                "TrackingByCustomer": True,
                "BillableExpenseTracking": True,
            },
            "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": False},
            "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "USD"}},
            "ReportPrefs": {"ReportBasis": "Accrual", "CalcAgingReportFromTxnDate": False},
            "OtherPrefs": {
                "NameValue": [
                    {"Name": "SalesFormsPrefs.DefaultCustomerMessage", "Value": _CUSTOMER_MEMO},
                    {"Name": "SalesFormsPrefs.DefaultItem", "Value": "1"},
                    {"Name": "DTXCopyMemo", "Value": "false"},
                ]
            },
            **self.envelope("1", self.created),
        }

    def build_accounts(self) -> None:
        for account_id, name, account_type, sub_type, parent_id, active, balance in _ACCOUNTS:
            fully_qualified = name
            account: dict[str, Any] = {"Name": name, "SubAccount": parent_id is not None}
            if parent_id is not None:
                account["ParentRef"] = {"value": parent_id}
                fully_qualified = f"{self.accounts[parent_id]['FullyQualifiedName']}:{name}"
            amount = _money(Decimal(balance or "0"))
            account.update(
                {
                    "FullyQualifiedName": fully_qualified,
                    "Active": active,
                    "Classification": _CLASSIFICATION[account_type],
                    "AccountType": account_type,
                    "AccountSubType": sub_type,
                    "CurrentBalance": amount,
                    "CurrentBalanceWithSubAccounts": amount,
                    "CurrencyRef": dict(_USD),
                    **self.envelope(account_id, self.created),
                }
            )
            self.accounts[account_id] = account

    def build_tax(self) -> None:
        for rate_id, name, rate, agency_id, agency in _TAX_RATES:
            self.tax_rates[rate_id] = {
                "Name": name,
                "Description": f"{name} ({agency})",
                "Active": True,
                "RateValue": _number(Decimal(rate)),
                "AgencyRef": {"value": agency_id},
                "SpecialTaxType": "NONE",
                "DisplayType": "ReadOnly",
                **self.envelope(rate_id, self.created),
            }
        for code_id, name, description, rate_ids in _TAX_CODES:
            code: dict[str, Any] = {
                "Name": name,
                "Description": description,
                "Active": True,
                "Hidden": False,
                "Taxable": code_id != "NON",
                "TaxGroup": bool(rate_ids),
            }
            if rate_ids:
                code["SalesTaxRateList"] = {
                    "TaxRateDetail": [
                        {
                            "TaxRateRef": {
                                "value": rate_id,
                                "name": self.tax_rates[rate_id]["Name"],
                            },
                            "TaxTypeApplicable": "TaxOnAmount",
                            "TaxOrder": 0,
                        }
                        for rate_id in rate_ids
                    ]
                }
                code["PurchaseTaxRateList"] = {"TaxRateDetail": []}
            code.update(self.envelope(code_id, self.created))
            self.tax_codes[code_id] = code

    def build_customers(self) -> None:
        for index, row in enumerate(_CUSTOMERS):
            customer_id, display, given, family, company, email, phone, addr = row
            created = self.created + dt.timedelta(days=1, minutes=7 * index)
            customer: dict[str, Any] = {
                "Taxable": True,
                "BillAddr": self.address(*addr),
                "ShipAddr": self.address(*addr),
                "Job": False,
                "BillWithParent": False,
                "Balance": 0.0,
                "BalanceWithJobs": 0.0,
                "CurrencyRef": dict(_USD),
                "PreferredDeliveryMethod": "Email",
                "IsProject": False,
                "GivenName": given,
                "FamilyName": family,
                "FullyQualifiedName": display,
                "DisplayName": display,
                "PrintOnCheckName": company or display,
                "Active": True,
                "PrimaryPhone": {"FreeFormNumber": phone},
                "PrimaryEmailAddr": {"Address": email},
                **self.envelope(customer_id, created),
            }
            if company:
                customer["CompanyName"] = company
            self.customers[customer_id] = customer

    def build_items(self) -> None:
        for index, row in enumerate(_ITEMS):
            item_id, name, item_type, description, price, taxable, income_id, stock, cost = row
            created = self.created + dt.timedelta(days=1, hours=2, minutes=5 * index)
            item: dict[str, Any] = {"Name": name}
            if description:
                item["Description"] = description
            item.update(
                {
                    "Active": True,
                    "FullyQualifiedName": name,
                    "Taxable": taxable,
                    "UnitPrice": _money(Decimal(price)),
                    "Type": item_type,
                    "IncomeAccountRef": self.account_ref(income_id),
                    "PurchaseCost": _money(Decimal(cost or "0")),
                    "TrackQtyOnHand": stock is not None,
                }
            )
            if stock is not None:
                unit_cost, quantity = stock
                item.update(
                    {
                        "PurchaseDesc": description,
                        "PurchaseCost": _money(Decimal(unit_cost)),
                        "ExpenseAccountRef": self.account_ref(_COGS_ACCOUNT_ID),
                        "AssetAccountRef": self.account_ref(_INVENTORY_ACCOUNT_ID),
                        "QtyOnHand": quantity,
                        "InvStartDate": self.date(self.created),
                    }
                )
            elif item_type == "NonInventory":
                item["ExpenseAccountRef"] = self.account_ref(_COGS_ACCOUNT_ID)
            item.update(self.envelope(item_id, created))
            self.items[item_id] = item

    def build_bundles(self) -> list[dict[str, Any]]:
        bundles = []
        for index, (item_id, name, description, components) in enumerate(_BUNDLES):
            created = self.created + dt.timedelta(days=1, hours=3, minutes=5 * index)
            lines = [
                {
                    "ItemRef": {"value": part_id, "name": self.items[part_id]["Name"]},
                    "Qty": qty,
                }
                for part_id, qty in components
            ]
            bundles.append(
                {
                    "Name": name,
                    "Description": description,
                    "Active": True,
                    "FullyQualifiedName": name,
                    "Taxable": False,
                    "UnitPrice": 0,
                    "Type": "Group",
                    "TrackQtyOnHand": False,
                    "PrintGroupedItems": False,
                    "ItemGroupDetail": {"ItemGroupLine": lines},
                    **self.envelope(item_id, created),
                }
            )
        return bundles

    def build_vendors(self) -> list[dict[str, Any]]:
        vendors = []
        for index, row in enumerate(_VENDORS):
            vendor_id, display, company, email, phone, addr = row
            created = self.created + dt.timedelta(days=1, hours=4, minutes=3 * index)
            vendors.append(
                {
                    "BillAddr": self.address(*addr),
                    "Balance": 0.0,
                    "Vendor1099": False,
                    "CurrencyRef": dict(_USD),
                    "CompanyName": company,
                    "DisplayName": display,
                    "PrintOnCheckName": company,
                    "Active": True,
                    "PrimaryPhone": {"FreeFormNumber": phone},
                    "PrimaryEmailAddr": {"Address": email},
                    **self.envelope(vendor_id, created),
                }
            )
        return vendors

    def build_employees(self) -> list[dict[str, Any]]:
        employees = []
        for index, (employee_id, given, family, number, days) in enumerate(_EMPLOYEES):
            created = self.created + dt.timedelta(days=1, hours=5, minutes=3 * index)
            display = f"{given} {family}"
            employees.append(
                {
                    "BillableTime": False,
                    "GivenName": given,
                    "FamilyName": family,
                    "DisplayName": display,
                    "PrintOnCheckName": display,
                    "Active": True,
                    "EmployeeNumber": number,
                    "HiredDate": self.date(self.created - dt.timedelta(days=days)),
                    **self.envelope(employee_id, created),
                }
            )
        return employees

    def build_exchange_rates(self) -> list[dict[str, Any]]:
        return [
            {
                "SourceCurrencyCode": code,
                "TargetCurrencyCode": _USD["value"],
                "Rate": float(rate),
                "AsOfDate": as_of,
                "SyncToken": "0",
                "domain": "QBO",
                "sparse": False,
                "MetaData": {"LastUpdatedTime": self.stamp(self.created)},
            }
            for code, rates in _EXCHANGE_RATES.items()
            for as_of, rate in rates
        ]

    def build_invoices(self) -> None:
        for index, (customer_id, days_ago, crew, rows) in enumerate(_INVOICES):
            customer = self.customers[customer_id]
            created = self.now - dt.timedelta(days=days_ago, hours=5, minutes=-11 * index)
            lines: list[dict[str, Any]] = []
            subtotal = Decimal(0)
            taxable = Decimal(0)
            for line_number, (item_id, qty_text, price_text) in enumerate(rows, start=1):
                item = self.items[item_id]
                qty = Decimal(qty_text)
                unit_price = Decimal(price_text or str(item["UnitPrice"]))
                amount = (qty * unit_price).quantize(_CENT, rounding=ROUND_HALF_UP)
                subtotal += amount
                if item["Taxable"]:
                    taxable += amount
                if item["TrackQtyOnHand"]:
                    item["QtyOnHand"] -= int(qty)
                line: dict[str, Any] = {"Id": str(line_number), "LineNum": line_number}
                if "Description" in item:
                    line["Description"] = item["Description"]
                line.update(
                    {
                        "Amount": _money(amount),
                        "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {
                            "ItemRef": {"value": item_id, "name": item["Name"]},
                            "UnitPrice": _number(unit_price),
                            "Qty": _number(qty),
                            "ItemAccountRef": dict(item["IncomeAccountRef"]),
                            "TaxCodeRef": {"value": "TAX" if item["Taxable"] else "NON"},
                        },
                    }
                )
                lines.append(line)
            lines.append(
                {
                    "Amount": _money(subtotal),
                    "DetailType": "SubTotalLineDetail",
                    "SubTotalLineDetail": {},
                }
            )
            tax_code_id = _TAX_CODE_BY_STATE[customer["BillAddr"]["CountrySubDivisionCode"]]
            tax_detail, total_tax = self.tax_detail(tax_code_id, taxable)
            total = subtotal + total_tax
            txn_date = created - dt.timedelta(hours=1)
            due = _local(txn_date).date() + dt.timedelta(days=_TERMS_DAYS)
            bill_addr = customer["BillAddr"]
            ship_addr = customer["ShipAddr"]
            invoice = {
                "AllowIPNPayment": False,
                "AllowOnlinePayment": False,
                "AllowOnlineCreditCardPayment": False,
                "AllowOnlineACHPayment": False,
                "CustomField": [
                    {
                        "DefinitionId": "1",
                        "Name": "Crew #",
                        "Type": "StringType",
                        "StringValue": crew,
                    }
                ],
                "DocNumber": str(_FIRST_DOC_NUMBER + index),
                "TxnDate": self.date(txn_date),
                "CurrencyRef": dict(_USD),
                "LinkedTxn": [],
                "Line": lines,
                "TxnTaxDetail": tax_detail,
                "CustomerRef": {"value": customer_id, "name": customer["DisplayName"]},
                "CustomerMemo": {"value": _CUSTOMER_MEMO},
                "BillAddr": self.address(
                    bill_addr["Line1"],
                    bill_addr["City"],
                    bill_addr["CountrySubDivisionCode"],
                    bill_addr["PostalCode"],
                ),
                "ShipAddr": self.address(
                    ship_addr["Line1"],
                    ship_addr["City"],
                    ship_addr["CountrySubDivisionCode"],
                    ship_addr["PostalCode"],
                ),
                "DueDate": due.isoformat(),
                "TotalAmt": _money(total),
                "ApplyTaxAfterDiscount": False,
                "PrintStatus": "NotSet",
                "EmailStatus": "NotSet",
                "BillEmail": dict(customer["PrimaryEmailAddr"]),
                "Balance": _money(total),
                **self.envelope(str(_FIRST_TXN_ID + index), created),
            }
            self.invoices.append(invoice)

    def tax_detail(self, tax_code_id: str, taxable: Decimal) -> tuple[dict[str, Any], Decimal]:
        """TxnTaxDetail for a US invoice: one TaxLine per rate, each rounded half up."""
        tax_lines = []
        total_tax = Decimal(0)
        for detail in self.tax_codes[tax_code_id]["SalesTaxRateList"]["TaxRateDetail"]:
            rate_id = detail["TaxRateRef"]["value"]
            percent = Decimal(str(self.tax_rates[rate_id]["RateValue"]))
            tax = (taxable * percent / 100).quantize(_CENT, rounding=ROUND_HALF_UP)
            total_tax += tax
            tax_lines.append(
                {
                    "Amount": _money(tax),
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": rate_id},
                        "PercentBased": True,
                        "TaxPercent": _number(percent),
                        "NetAmountTaxable": _money(taxable),
                    },
                }
            )
        detail = {
            "TxnTaxCodeRef": {"value": tax_code_id},
            "TotalTax": _money(total_tax),
            "TaxLine": tax_lines,
        }
        return detail, total_tax

    def build_payment(self) -> None:
        invoice_index, days_ago, amount_text, reference = _PAYMENT
        invoice = self.invoices[invoice_index]
        amount = Decimal(amount_text)
        created = self.now - dt.timedelta(days=days_ago, hours=2)
        payment_id = str(_FIRST_TXN_ID + len(self.invoices))
        customer_ref = dict(invoice["CustomerRef"])
        payment = {
            "CustomerRef": customer_ref,
            "DepositToAccountRef": self.account_ref(_UNDEPOSITED_ACCOUNT_ID),
            "PaymentRefNum": reference,
            "TotalAmt": _money(amount),
            "UnappliedAmt": 0.0,
            "ProcessPayment": False,
            "TxnDate": self.date(created),
            "CurrencyRef": dict(_USD),
            "Line": [
                {
                    "Amount": _money(amount),
                    "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                }
            ],
            **self.envelope(payment_id, created),
        }
        self.payments.append(payment)
        balance = Decimal(str(invoice["Balance"])) - amount
        invoice["Balance"] = _money(balance)
        invoice["LinkedTxn"].append({"TxnId": payment_id, "TxnType": "Payment"})
        invoice["MetaData"]["LastUpdatedTime"] = self.stamp(created)

    def derive_balances(self) -> None:
        open_by_customer: dict[str, Decimal] = {}
        for invoice in self.invoices:
            customer_id = invoice["CustomerRef"]["value"]
            balance = Decimal(str(invoice["Balance"]))
            open_by_customer[customer_id] = open_by_customer.get(customer_id, Decimal(0)) + balance
        for customer_id, balance in open_by_customer.items():
            self.customers[customer_id]["Balance"] = _money(balance)
            self.customers[customer_id]["BalanceWithJobs"] = _money(balance)
        derived = {
            _AR_ACCOUNT_ID: sum(open_by_customer.values(), Decimal(0)),
            _UNDEPOSITED_ACCOUNT_ID: sum(
                (Decimal(str(p["TotalAmt"])) for p in self.payments), Decimal(0)
            ),
            _INVENTORY_ACCOUNT_ID: sum(
                (
                    Decimal(str(i["PurchaseCost"])) * i["QtyOnHand"]
                    for i in self.items.values()
                    if i["TrackQtyOnHand"]
                ),
                Decimal(0),
            ),
        }
        for account_id, balance in derived.items():
            account = self.accounts[account_id]
            account["CurrentBalance"] = _money(balance)
            account["CurrentBalanceWithSubAccounts"] = _money(balance)
