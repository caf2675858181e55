"""The three staff roles and the model permissions each one holds.

Roles are defined here, in code, and applied by a data migration and again after every
``migrate`` (so models added by later apps join the right roles). Granting a person a role is
adding them to the group in the admin.
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions

SYNC_ADMINISTRATORS = "Sync administrators"
BILLING_STAFF = "Billing staff"
AUDITORS = "Auditors"

SYNC_APPS = ("integrations", "sync")
INVOICING_MODELS = ("customer", "item", "taxrate", "invoice", "invoiceline")


def _codenames_for(role: str, permission) -> bool:
    """Whether ``role`` holds ``permission`` (a Permission row with its content type)."""
    app = permission.content_type.app_label
    model = permission.content_type.model
    action = permission.codename.split("_", 1)[0]
    invoicing = app == "portal" and model in INVOICING_MODELS
    sync_side = app in SYNC_APPS
    if role == SYNC_ADMINISTRATORS:
        return invoicing or sync_side or (app == "django_q" and action == "view")
    if role == BILLING_STAFF:
        # Billing staff keep the records and may push them (sync/retry), but the connection,
        # mappings and configuration are the sync administrators'.
        return invoicing or (sync_side and action == "view") or permission.codename in BILLING_EXTRA
    if role == AUDITORS:
        return (invoicing or sync_side) and action == "view"
    raise ValueError(role)


ROLES = (SYNC_ADMINISTRATORS, BILLING_STAFF, AUDITORS)
# Custom permissions billing staff hold on the sync side (later apps add theirs here).
BILLING_EXTRA = {"sync_invoice", "retry_syncrecord"}


def roles_sync(*, apps=global_apps, using: str = "default") -> None:
    """Create the role groups if missing and set each one's permissions to its definition."""
    # Permissions are normally created after migrate; make sure they exist now, for the
    # models this (possibly historical) app registry knows.
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, apps=apps, using=using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permissions = list(Permission.objects.using(using).select_related("content_type"))
    for role in ROLES:
        group, _ = Group.objects.using(using).get_or_create(name=role)
        group.permissions.set([p for p in permissions if _codenames_for(role, p)])


def roles_sync_after_migrate(sender, using="default", apps=global_apps, **kwargs) -> None:
    # post_migrate fires once per app; the last one (this app or a later one) leaves the
    # complete picture. Only act when the auth tables exist in this plan's state.
    if sender.label != "portal":
        return
    try:
        apps.get_model("auth", "Group")
    except LookupError:
        return
    roles_sync(apps=apps, using=using)
