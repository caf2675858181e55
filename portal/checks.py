"""System checks for rules that span several settings."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def ledgerlink_settings_check(app_configs, **kwargs):
    problems = []
    if settings.QBO_ENVIRONMENT == "production" and not settings.QBO_REDIRECT_URI.startswith(
        "https://"
    ):
        problems.append(
            Error(
                "QBO_REDIRECT_URI must be an https:// URL when QBO_ENVIRONMENT=production.",
                hint="Intuit accepts only https redirect URIs for production apps, e.g. "
                "QBO_REDIRECT_URI=https://ledgerlink.example.com/integrations/quickbooks/callback/",
                id="ledgerlink.E001",
            )
        )
    return problems


@register(deploy=True)
def ledgerlink_deploy_check(app_configs, **kwargs):
    problems = []
    if settings.EMAIL_BACKEND.endswith("console.EmailBackend"):
        problems.append(
            Warning(
                "Password-reset emails are printed to the console, not sent.",
                hint="Set EMAIL_BACKEND (and its EMAIL_* settings) to send real email.",
                id="ledgerlink.W001",
            )
        )
    return problems
