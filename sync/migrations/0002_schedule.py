from django.db import migrations


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="ledgerlink-sync",
        defaults={
            "func": "sync.tasks.scheduled_sync",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="ledgerlink-sync").delete()


class Migration(migrations.Migration):
    # Every minute the scheduler looks for connections whose pull interval has passed and for
    # failed records due for a retry; the work itself is skipped when nothing is due.
    dependencies = [
        ("sync", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]
    operations = [migrations.RunPython(create_schedule, remove_schedule)]
