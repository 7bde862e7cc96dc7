"""Install the triggers that tell flagproxy at once when a flag table changes (PostgreSQL only).

See flagproxy_django/notify.py. Tables that do not exist yet are skipped:
the post_migrate handler of the app (and ``manage.py flagproxy_triggers``)
installs their triggers once they do. Reversing the migration drops every
trigger and the function. On other databases it does nothing.
"""
from django.db import migrations


def install(apps, schema_editor):
    from flagproxy_django import notify

    if notify.supported(schema_editor.connection):
        notify.install(schema_editor.connection)


def uninstall(apps, schema_editor):
    from flagproxy_django import notify

    if notify.supported(schema_editor.connection):
        notify.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [migrations.RunPython(install, uninstall)]
