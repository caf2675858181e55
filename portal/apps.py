from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.db.models.signals import post_migrate


class LedgerlinkAdminConfig(AdminConfig):
    default_site = "portal.admin_site.LedgerlinkAdminSite"


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Invoicing"

    def ready(self) -> None:
        from portal import checks  # noqa: F401  (registers system checks)
        from portal.roles import roles_sync_after_migrate

        # Apps added later (integrations, sync) bring new models; their permissions are
        # granted to the roles after every migrate, once Django has created them.
        post_migrate.connect(roles_sync_after_migrate, dispatch_uid="ledgerlink.roles")
