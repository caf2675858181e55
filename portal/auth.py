"""django-allauth adapter: staff accounts only, no public sign-up."""

from allauth.account.adapter import DefaultAccountAdapter


class StaffAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        # Staff accounts are made by an administrator in the admin or with createsuperuser.
        return False
