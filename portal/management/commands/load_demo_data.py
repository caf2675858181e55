from django.core.management.base import BaseCommand

from portal.services import demo_data_load


class Command(BaseCommand):
    help = "Load the demo customers, items, tax rates and invoices and (re)create the demo login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo", help="Login to create (default: demo).")

    def handle(self, *args, username: str, **options):
        result = demo_data_load(username=username)
        summary = ", ".join(f"{count} {name}" for name, count in result.created.items())
        self.stdout.write(f"Demo data: created {summary} (existing records kept).")
        self.stdout.write(
            self.style.SUCCESS(f"Login: {result.username}   Password: {result.password}")
        )
