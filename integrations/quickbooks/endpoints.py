"""Where QuickBooks Online lives, per environment, and the API paths the client uses.

Settings are read when ``endpoints_for()`` is called, never at import time, so tests and
``override_settings`` see the current values. Facts: qbo-api.md sections 1 and 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

from django.conf import settings

__all__ = ["ENVIRONMENTS", "ApiPath", "Endpoints", "endpoints_for"]

ENVIRONMENTS = ("production", "sandbox", "emulator")

# Per environment: API host, OAuth endpoints and the QBO web app's invoice page. "{emulator}"
# stands for settings.QBO_EMULATOR_URL, which serves the same paths as Intuit.
_TEMPLATES: dict[str, dict[str, str]] = {
    "production": {
        # Intuit: "Explore the QuickBooks Online API"
        # (docs/develop/explore-the-quickbooks-online-api)
        "api_base": "https://quickbooks.api.intuit.com",
        # Intuit: "OpenID discovery document"
        # (docs/develop/authentication-and-authorization/oauth-openid-discovery-doc)
        "authorize_url": "https://appcenter.intuit.com/connect/oauth2",
        "token_url": "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
        "revoke_url": "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
        "userinfo_url": "https://accounts.platform.intuit.com/v1/openid_connect/userinfo",
        "invoice_web_url": "https://app.qbo.intuit.com/app/invoice?{query}",
    },
    "sandbox": {
        "api_base": "https://sandbox-quickbooks.api.intuit.com",
        # The sandbox discovery document lists the same authorize, token and revoke URLs.
        "authorize_url": "https://appcenter.intuit.com/connect/oauth2",
        "token_url": "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
        "revoke_url": "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
        "userinfo_url": "https://sandbox-accounts.platform.intuit.com/v1/openid_connect/userinfo",
        "invoice_web_url": "https://app.sandbox.qbo.intuit.com/app/invoice?{query}",
    },
    "emulator": {
        "api_base": "{emulator}",
        "authorize_url": "{emulator}/connect/oauth2",
        "token_url": "{emulator}/oauth2/v1/tokens/bearer",
        "revoke_url": "{emulator}/v2/oauth2/tokens/revoke",
        "userinfo_url": "{emulator}/v1/openid_connect/userinfo",
        # One emulator serves many companies, so its web page needs the realm too.
        "invoice_web_url": "{emulator}/app/invoice?{query}&realmId={realm_id}",
    },
}


class ApiPath:
    """Accounting API v3 path templates, relative to ``Endpoints.api_base``.

    Entity segments are lower case (``invoice``): QBO's URIs are case-sensitive.
    """

    # Create, sparse/full update, delete (?operation=delete), void (?operation=void): the
    # entity's own page, developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/
    entity = "/v3/company/{realm_id}/{entity}"
    # Read an object by Id: the same entity page, "Read an <entity>".
    entity_id = "/v3/company/{realm_id}/{entity}/{id}"
    # .../docs/develop/explore-the-quickbooks-online-api/data-queries
    query = "/v3/company/{realm_id}/query"
    # .../docs/develop/explore-the-quickbooks-online-api/change-data-capture
    cdc = "/v3/company/{realm_id}/cdc"
    # .../docs/develop/explore-the-quickbooks-online-api/batch
    batch = "/v3/company/{realm_id}/batch"
    # .../docs/api/accounting/all-entities/companyinfo
    company_info = "/v3/company/{realm_id}/companyinfo/{realm_id}"
    # .../docs/api/accounting/all-entities/preferences
    preferences = "/v3/company/{realm_id}/preferences"

    @staticmethod
    def build(template: str, **values: str) -> str:
        """Fill ``template`` with URL-quoted values (an Id can never break out of its segment)."""
        return template.format(**{k: url_quote(str(v), safe="") for k, v in values.items()})


@dataclass(frozen=True)
class Endpoints:
    """The URLs of one QuickBooks environment."""

    environment: str
    api_base: str
    authorize_url: str
    token_url: str
    revoke_url: str
    userinfo_url: str
    invoice_web_url_template: str

    def invoice_web_url(self, realm_id: str, txn_id: str) -> str:
        """The "open in QuickBooks" link for an invoice."""
        query = urlencode({"txnId": txn_id})
        return self.invoice_web_url_template.format(
            query=query, realm_id=url_quote(str(realm_id), safe="")
        )


def endpoints_for(environment: str | None = None) -> Endpoints:
    """The endpoints of ``environment`` (default: ``settings.QBO_ENVIRONMENT``).

    Raises ``ValueError`` for an environment other than production, sandbox or emulator.
    """
    environment = environment or settings.QBO_ENVIRONMENT
    if environment not in _TEMPLATES:
        raise ValueError(
            f"Unknown QuickBooks environment {environment!r}; use one of {', '.join(ENVIRONMENTS)}."
        )
    emulator = str(getattr(settings, "QBO_EMULATOR_URL", "") or "").rstrip("/")
    urls = {
        name: template.replace("{emulator}", emulator)
        for name, template in _TEMPLATES[environment].items()
    }
    return Endpoints(
        environment=environment,
        api_base=urls["api_base"],
        authorize_url=urls["authorize_url"],
        token_url=urls["token_url"],
        revoke_url=urls["revoke_url"],
        userinfo_url=urls["userinfo_url"],
        invoice_web_url_template=urls["invoice_web_url"],
    )
