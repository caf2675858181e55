from django.db import migrations


class Migration(migrations.Migration):
    # The sync configuration, tax mapping and field mapping moved to the sync app. Only
    # Django's state changes here; sync's 0003 takes the models over and renames the tables.
    dependencies = [("integrations", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="SyncConfiguration"),
                migrations.DeleteModel(name="TaxMapping"),
                migrations.DeleteModel(name="FieldMapping"),
            ],
            database_operations=[],
        )
    ]
