"""The flip permission flagproxy_django.can_flip_with_url and its migration."""
import io

from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import TestCase

from flagproxy_django.models import FLIP_CODENAME


class FlipPermissionTests(TestCase):
    def test_migration_created_it(self):
        perm = Permission.objects.get(content_type__app_label='flagproxy_django', codename=FLIP_CODENAME)
        self.assertIn('flip', perm.name)

    def test_granted_directly_and_through_a_group(self):
        perm = Permission.objects.get(content_type__app_label='flagproxy_django', codename=FLIP_CODENAME)
        direct = User.objects.create_user('direct')
        direct.user_permissions.add(perm)
        grouped = User.objects.create_user('grouped')
        flippers = Group.objects.create(name='flippers')
        flippers.permissions.add(perm)
        grouped.groups.add(flippers)
        plain = User.objects.create_user('plain')
        for user, may in ((direct, True), (grouped, True), (plain, False)):
            with self.subTest(user.username):
                user = User.objects.get(pk=user.pk)  # no permission cache
                self.assertEqual(user.has_perm('flagproxy_django.can_flip_with_url'), may)

    def test_no_table_and_no_missing_migration(self):
        self.assertNotIn('flagproxy_django_flagproxyflip', connection.introspection.table_names())
        out = io.StringIO()
        call_command('makemigrations', 'flagproxy_django', '--check', '--dry-run', stdout=out)
        self.assertIn('No changes', out.getvalue())

    def test_migration_follows_the_triggers(self):
        graph = MigrationLoader(connection).graph
        node = graph.node_map[('flagproxy_django', '0002_flip_permission')]
        self.assertIn(('flagproxy_django', '0001_notify_triggers'), {p.key for p in node.parents})
        self.assertEqual(graph.leaf_nodes('flagproxy_django'), [('flagproxy_django', '0003_flag_sample_switch')])
