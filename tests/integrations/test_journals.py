"""Accounts and tax codes fetched from the emulator, and the journals picked from them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from integrations import selectors, services
from integrations.models import Connection, QuickBooksAccount
from tests.integrations.connect_steps import shown_messages

JOURNALS_URL = "/admin/quickbooks/journals/"


@pytest.fixture
def connection(connection_factory):
    return connection_factory()


@pytest.fixture
def fetched(connection):
    services.accounts_fetch(connection=connection)
    services.tax_codes_fetch(connection=connection)
    return connection


@pytest.fixture
def browser(user_factory):
    client = Client()
    client.force_login(user_factory(role="Sync administrators"))
    return client


def account(connection: Connection, name: str) -> QuickBooksAccount:
    return connection.accounts.get(name=name)


# --- Fetch ---------------------------------------------------------------------------------


def test_fetch_loads_every_account_and_marks_the_inactive_ones(qbo, qbo_ui, connection):
    in_qbo = qbo_ui.rows("Account")
    qbo_ui.update("Account", {"Id": "7", "Active": False})  # Advertising, made inactive in QBO

    result = services.accounts_fetch(connection=connection)

    assert (result.total, result.created, result.updated) == (len(in_qbo), len(in_qbo), 0)
    assert result.inactive == 2
    assert connection.accounts.count() == len(in_qbo)
    assert set(connection.accounts.filter(active=False).values_list("name", flat=True)) == {
        "Advertising (deleted)",  # QBO renames what is made inactive
        "Travel (deleted)",
    }
    inventory = account(connection, "Inventory Asset")
    assert (inventory.qbo_id, inventory.account_type, inventory.account_sub_type) == (
        "81",
        "Other Current Asset",
        "Inventory",
    )
    assert inventory.classification == "Asset"
    connection.refresh_from_db()
    assert connection.accounts_fetched_at is not None


def test_fetching_again_updates_and_retires_accounts_gone_from_quickbooks(qbo, qbo_ui, fetched):
    QuickBooksAccount.objects.create(
        connection=fetched, qbo_id="999", name="Gone", account_type="Income"
    )
    qbo_ui.update("Account", {"Id": "79", "Name": "Product Sales"})

    result = services.accounts_fetch(connection=fetched)

    assert (result.created, result.deactivated) == (0, 1)
    assert result.updated == result.total
    assert account(fetched, "Gone").active is False
    assert fetched.accounts.get(qbo_id="79").name == "Product Sales"


def test_fetch_loads_tax_codes_with_their_combined_rates(qbo, qbo_ui, connection):
    result = services.tax_codes_fetch(connection=connection)

    assert result.total == len(qbo_ui.rows("TaxCode")) == 4
    codes = {c.name: c for c in connection.tax_codes.all()}
    assert codes["California"].rate_percent == Decimal("8")
    assert codes["Tucson"].rate_percent == Decimal("7.6")  # AZ State 7.1 + Tucson City 0.5
    assert str(codes["Tucson"]) == "Tucson (7.6%)"
    assert codes["TAX"].taxable and not codes["NON"].taxable
    assert codes["NON"].rate_percent is None


def test_fetch_on_a_connection_needing_reconnect_says_so(qbo, connection_factory):
    connection = connection_factory(
        status=Connection.Status.NEEDS_RECONNECT, last_error="Reconnect, please."
    )

    with pytest.raises(services.ReconnectRequired) as caught:
        services.accounts_fetch(connection=connection)

    assert caught.value.user_message == "Reconnect, please."
    assert qbo.app.requests_log() == []


# --- What each journal offers --------------------------------------------------------------


def test_journal_choices_follow_what_quickbooks_allows_on_items(qbo, fetched):
    choices = selectors.journal_choices(connection=fetched)

    assert {a.account_type for a in choices["income_account"]} == {"Income"}
    assert "Sales of Product Income" in {a.name for a in choices["income_account"]}
    assert {a.account_type for a in choices["expense_account"]} == {"Cost of Goods Sold", "Expense"}
    assert "Travel (deleted)" not in {a.name for a in choices["expense_account"]}
    assert [a.name for a in choices["asset_account"]] == ["Inventory Asset"]


def test_an_empty_journal_says_which_account_to_create_in_quickbooks(qbo, qbo_ui, connection):
    qbo_ui.update("Account", {"Id": "81", "Active": False})
    services.accounts_fetch(connection=connection)

    choices = selectors.journal_choices(connection=connection)

    assert choices["asset_account"] == []
    assert services.JOURNAL_MISSING_HINT["asset_account"] == (
        "Create an Other Current Asset account with detail type Inventory in QuickBooks, then "
        "fetch accounts again."
    )
    assert services.JOURNAL_MISSING_HINT["income_account"].startswith("Create an Income account")
    assert services.JOURNAL_MISSING_HINT["expense_account"].startswith(
        "Create a Cost of Goods Sold account"
    )


# --- Saving journals -----------------------------------------------------------------------


def test_saving_journals_in_the_admin(qbo, fetched, browser):
    page = browser.post(
        JOURNALS_URL,
        {
            "income_account": account(fetched, "Sales of Product Income").pk,
            "expense_account": account(fetched, "Cost of Goods Sold").pk,
            "asset_account": account(fetched, "Inventory Asset").pk,
        },
        follow=True,
    )

    assert shown_messages(page) == [
        "Journals saved: new items will be created with these accounts."
    ]
    fetched.refresh_from_db()
    assert fetched.income_account.name == "Sales of Product Income"
    assert fetched.expense_account.name == "Cost of Goods Sold"
    assert fetched.asset_account.name == "Inventory Asset"


@pytest.mark.parametrize(
    ("field", "name", "message"),
    [
        ("income_account", "Advertising", "Income account: Advertising is an Expense account; "
         "pick Income."),
        ("expense_account", "Services", "Expense account: Services is an Income account; pick "
         "Cost of Goods Sold or Expense."),
        ("asset_account", "Checking", "Inventory Asset account: Checking is a Bank account; "
         "pick Other Current Asset."),
        ("asset_account", "Undeposited Funds", "Inventory Asset account: Undeposited Funds is "
         "not an inventory asset account."),
        ("expense_account", "Travel (deleted)", "Expense account: Travel (deleted) is inactive "
         "in QuickBooks."),
    ],
)  # fmt: skip
def test_a_wrong_account_is_refused_naming_the_field(qbo, fetched, browser, field, name, message):
    chosen = {field: account(fetched, name).pk}
    # Income is required: a good one goes along, so the only fault is the wrong account.
    chosen.setdefault("income_account", account(fetched, "Sales of Product Income").pk)
    page = browser.post(JOURNALS_URL, chosen, follow=True)

    assert shown_messages(page) == [message]
    fetched.refresh_from_db()
    assert getattr(fetched, f"{field}_id") is None


def test_journals_save_refuses_an_account_of_another_company(qbo, fetched, connection_factory):
    other = connection_factory(realm_id=qbo.realm_ids[1])
    stranger = QuickBooksAccount.objects.create(
        connection=other, qbo_id="79", name="Their income", account_type="Income"
    )

    with pytest.raises(ValidationError) as caught:
        services.journals_save(
            connection=fetched, income_account=stranger, expense_account=None, asset_account=None
        )

    assert caught.value.message_dict == {
        "income_account": ["This account belongs to another QuickBooks company."]
    }
    fetched.refresh_from_db()
    assert fetched.income_account_id is None


def test_journals_keep_after_a_fetch(qbo, fetched):
    income = account(fetched, "Sales of Product Income")
    services.journals_save(
        connection=fetched, income_account=income, expense_account=None, asset_account=None
    )

    services.accounts_fetch(connection=fetched)

    fetched.refresh_from_db()
    assert fetched.income_account_id == income.pk


# --- Required journals ---------------------------------------------------------------------

BLANK = {"income_account": "", "expense_account": "", "asset_account": ""}
INCOME_REQUIRED = "Income account: required. Every item Ledgerlink creates in QuickBooks needs one."


def test_blank_journals_are_refused_naming_the_income_account(qbo, fetched, browser):
    page = browser.post(JOURNALS_URL, BLANK, follow=True)

    assert shown_messages(page) == [INCOME_REQUIRED]
    fetched.refresh_from_db()
    assert fetched.income_account_id is None
    text = page.content.decode()
    assert "Income is required. Expense and Inventory Asset are required while the portal has " in (
        text
    )
    assert "(it has none now, so they may stay blank)" in text
    assert '<label for="id_income_account" class="required">' in text
    assert '<label for="id_expense_account">' in text


def test_with_inventory_items_expense_and_inventory_asset_are_required_too(qbo, fetched, browser):
    from portal.models import Item

    Item.objects.create(name="Garden hose", type=Item.Type.INVENTORY)
    income = account(fetched, "Sales of Product Income")
    page = browser.post(JOURNALS_URL, {**BLANK, "income_account": income.pk}, follow=True)

    assert shown_messages(page) == [
        "Expense account: required while the portal has inventory item (1): QuickBooks needs "
        "it to create them.",
        "Inventory Asset account: required while the portal has inventory item (1): "
        "QuickBooks needs it to create them.",
    ]
    fetched.refresh_from_db()
    assert fetched.income_account_id is None  # nothing of a refused save is kept
    assert "(it has 1 now)" in page.content.decode()
    assert '<label for="id_asset_account" class="required">' in page.content.decode()

    with pytest.raises(ValidationError) as refused:
        services.journals_save(
            connection=fetched, income_account=income, expense_account=None, asset_account=None
        )
    assert set(refused.value.message_dict) == {"expense_account", "asset_account"}
