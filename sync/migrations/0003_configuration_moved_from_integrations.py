import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    # The sync configuration, tax mapping and field mapping come over from the integrations app
    # with their rows (state first, on the old tables; then the tables are renamed). The two
    # SyncRecord fields that were written and never read go.
    dependencies = [
        ("sync", "0002_schedule"),
        ("integrations", "0002_move_sync_configuration_to_sync"),
        ("portal", "0003_invoice_amount_paid_invoice_reference"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='SyncConfiguration',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('app', models.CharField(choices=[('invoices', 'Invoices')], default='invoices', max_length=20)),
                        ('sync_type', models.CharField(choices=[('one_way', 'One-way (portal to QuickBooks)'), ('two_way', 'Two-way')], default='two_way', max_length=10)),
                        ('enabled', models.BooleanField(default=True, verbose_name='sync on')),
                        ('push_on_save', models.BooleanField(default=True, help_text='Queue a push as soon as an invoice is saved in the portal.')),
                        ('pull_interval_minutes', models.PositiveIntegerField(default=15, help_text='How often the schedule pulls changes from QuickBooks (two-way only).', validators=[django.core.validators.MinValueValidator(1)], verbose_name='pull every (minutes)')),
                        ('first_invoice_date', models.DateField(blank=True, help_text='Invoices issued before this date are left alone on both sides.', null=True)),
                        ('auto_create_customers', models.BooleanField(default=True, help_text='Create a customer in QuickBooks when none has the same name.')),
                        ('auto_create_items', models.BooleanField(default=True, help_text='Create an item in QuickBooks when none has the same name.')),
                        ('conflict_rule', models.CharField(choices=[('hold', 'Hold for review (nothing overwritten)'), ('qbo_wins', 'QuickBooks wins'), ('portal_wins', 'Portal wins')], default='hold', help_text='What happens when an invoice changed on both sides since they last agreed.', max_length=20)),
                        ('pull_cursor', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('last_pull_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('last_push_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('connection', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='sync_configuration', to='integrations.connection')),
                    ],
                    options={
                        'verbose_name': 'sync configuration',
                        'db_table': 'integrations_syncconfiguration',
                    },
                ),
                migrations.CreateModel(
                    name='TaxMapping',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('connection', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tax_mappings', to='integrations.connection')),
                        ('tax_code', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='integrations.quickbookstaxcode')),
                        ('tax_rate', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='portal.taxrate')),
                    ],
                    options={
                        'db_table': 'integrations_taxmapping',
                        'constraints': [models.UniqueConstraint(fields=('connection', 'tax_rate'), name='integrations_taxmapping_unique_rate')],
                    },
                ),
                migrations.CreateModel(
                    name='FieldMapping',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('local_field', models.CharField(max_length=50)),
                        ('qbo_field', models.CharField(blank=True, max_length=50, verbose_name='QuickBooks field')),
                        ('direction', models.CharField(choices=[('both', 'Both ways'), ('to_qbo', 'Portal to QuickBooks'), ('from_qbo', 'QuickBooks to portal')], default='both', max_length=10)),
                        ('connection', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='field_mappings', to='integrations.connection')),
                    ],
                    options={
                        'ordering': ['id'],
                        'db_table': 'integrations_fieldmapping',
                        'constraints': [models.UniqueConstraint(fields=('connection', 'local_field'), name='integrations_fieldmapping_unique_field')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="syncconfiguration", table=None),
        migrations.AlterModelTable(name="taxmapping", table=None),
        migrations.AlterModelTable(name="fieldmapping", table=None),
        migrations.RemoveField(model_name="syncrecord", name="agreed_hash"),
        migrations.RemoveField(model_name="syncrecord", name="qbo_last_updated"),
    ]
