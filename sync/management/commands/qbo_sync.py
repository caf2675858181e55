from django.core.management.base import BaseCommand

from integrations.management.commands._common import add_connection_argument, connections
from sync.reconcile import reconcile_report
from sync.services import sync_run


class Command(BaseCommand):
    help = "Sync invoices with QuickBooks now: push, pull or both, with progress and a summary."

    def add_arguments(self, parser):
        add_connection_argument(parser)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--push", action="store_true", help="Only push portal changes.")
        group.add_argument("--pull", action="store_true", help="Only pull QuickBooks changes.")
        group.add_argument("--items", action="store_true", help="Quick sync of items only.")
        group.add_argument(
            "--reconcile",
            action="store_true",
            help="Compare both sides and print a reconciliation report; changes nothing.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what would be created, updated or held; change nothing on either side.",
        )

    def handle(
        self,
        *args,
        realm=None,
        push=False,
        pull=False,
        items=False,
        reconcile=False,
        dry_run=False,
        **options,
    ):
        if reconcile:
            for connection in connections(realm):
                report = reconcile_report(connection=connection)
                self.stdout.write(report.render())
            return
        direction = "push" if push else "pull" if pull else "items" if items else "both"
        for connection in connections(realm):
            self.stdout.write(
                f"{connection} ({connection.realm_id}): {direction}"
                + (" (dry run)" if dry_run else "")
            )
            run = self._run_with_progress(connection, direction, dry_run)
            self._summary(run)

    def _run_with_progress(self, connection, direction, dry_run):
        last = {"shown": None}

        def show(run):
            if run.total and (run.done, run.total) != last["shown"]:
                last["shown"] = (run.done, run.total)
                self.stdout.write(f"  progress: {run.done} of {run.total}")

        return sync_run(
            connection=connection,
            trigger="command",
            direction=direction,
            dry_run=dry_run,
            on_progress=show,
        )

    def _summary(self, run):
        for line in getattr(run, "planned", []) or []:
            self.stdout.write(f"  would {line}")
        style = self.style.SUCCESS if run.outcome == "done" else self.style.ERROR
        self.stdout.write(
            style(
                f"  {run.outcome_label}: {run.created} created, {run.updated} updated, "
                f"{run.unchanged} unchanged, {run.failed} failed, {run.conflicts} conflicts, "
                f"{run.skipped} skipped, {run.api_calls} API calls"
            )
        )
        if run.message:
            self.stdout.write(f"  {run.message}")
        for event in run.events.filter(level="error")[:20]:
            self.stdout.write(f"  ! {event.message}")
