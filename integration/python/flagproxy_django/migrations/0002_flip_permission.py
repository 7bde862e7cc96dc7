"""Create the permission ``flagproxy_django.can_flip_with_url``.

It lets a site without django-feature-flipper grant flagproxy's flip
permission in the admin. The model that holds it is unmanaged (no table);
the permission is created here, so it exists as soon as the migration ran
(Django's post_migrate would create it too). Reversing the migration
deletes it, and with it every grant.
"""
from django.db import migrations, models

CODENAME = 'can_flip_with_url'
NAME = 'Can flip flags with ?enable_x (flagproxy)'


def create_permission(apps, schema_editor):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    Permission = apps.get_model('auth', 'Permission')
    db = schema_editor.connection.alias
    ct, _ = ContentType.objects.using(db).get_or_create(app_label='flagproxy_django', model='flagproxyflip')
    Permission.objects.using(db).get_or_create(content_type=ct, codename=CODENAME, defaults={'name': NAME})


def delete_permission(apps, schema_editor):
    Permission = apps.get_model('auth', 'Permission')
    db = schema_editor.connection.alias
    Permission.objects.using(db).filter(content_type__app_label='flagproxy_django', codename=CODENAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ('flagproxy_django', '0001_notify_triggers'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('auth', '0002_alter_permission_name_max_length'),
    ]
    operations = [
        migrations.CreateModel(
            name='FlagproxyFlip',
            fields=[('id', models.AutoField(primary_key=True, serialize=False))],
            options={
                'verbose_name': 'flagproxy flip permission',
                'permissions': [(CODENAME, NAME)],
                'managed': False,
                'default_permissions': (),
            },
        ),
        migrations.RunPython(create_permission, delete_permission),
    ]
