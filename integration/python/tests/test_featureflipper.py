"""feature-flipper's management commands (flagproxy_django.featureflipper)."""
import io
import json
import os
import tempfile

from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings

from flagproxy_django.featureflipper.models import Feature


def run(*args, **options):
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


class FeatureCommandTests(TestCase):
    def setUp(self):
        Feature.objects.create(name='search', description='Search box', enabled=False)
        Feature.objects.create(name='profile', description='', enabled=True)

    def test_table_and_permission_are_feature_flippers(self):
        self.assertEqual(Feature._meta.db_table, 'featureflipper_feature')
        self.assertTrue(Permission.objects.filter(
            content_type__app_label='featureflipper', codename='can_flip_with_url').exists())

    def test_features_lists_in_name_order(self):
        self.assertEqual(run('features'), 'profile is enabled\nsearch is disabled\n')

    def test_addfeature(self):
        out = run('addfeature', 'beta', 'search')
        self.assertEqual(out, 'Added feature beta\nFeature search already exists, and is disabled\n')
        self.assertFalse(Feature.objects.get(name='beta').enabled)

    def test_enable_and_disable(self):
        self.assertEqual(run('enablefeature', 'search', 'profile'),
                         'Enabled feature search.\nFeature profile is already enabled.\n')
        self.assertTrue(Feature.objects.get(name='search').enabled)
        self.assertEqual(run('disablefeature', 'profile', 'profile'),
                         'Disabled feature profile.\nFeature profile is already disabled.\n')
        self.assertFalse(Feature.objects.get(name='profile').enabled)

    def test_unknown_name_is_reported_and_the_rest_still_set(self):
        out = io.StringIO()
        with self.assertRaises(CommandError) as caught:
            call_command('enablefeature', 'nope', 'search', stdout=out)
        self.assertEqual(caught.exception.returncode, 1)
        self.assertEqual(out.getvalue(), 'Feature nope is not in the database.\nEnabled feature search.\n')
        self.assertTrue(Feature.objects.get(name='search').enabled)

    def test_dumpfeatures(self):
        rows = json.loads(run('dumpfeatures'))
        self.assertEqual(rows, [{'name': 'profile', 'description': '', 'enabled': True},
                                {'name': 'search', 'description': 'Search box', 'enabled': False}])

    def features_file(self, content):
        fd, path = tempfile.mkstemp(suffix='.json')
        with os.fdopen(fd, 'w') as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        self.addCleanup(os.unlink, path)
        return path

    def test_loadfeatures_upserts_and_keeps_the_rest(self):
        path = self.features_file([{'name': 'search', 'description': 'New', 'enabled': True},
                                   {'name': 'beta', 'description': 'b', 'enabled': False, 'extra': 1}])
        self.assertEqual(run('loadfeatures', path), 'Loaded 2 features.\n')
        got = {f.name: (f.description, f.enabled) for f in Feature.objects.all()}
        self.assertEqual(got, {'search': ('New', True), 'beta': ('b', False), 'profile': ('', True)})
        self.assertEqual(run('loadfeatures', path, verbosity=0), '')

    def test_loadfeatures_from_the_settings(self):
        path = self.features_file([{'name': 'beta', 'description': '', 'enabled': True}])
        for setting in ('FEATURE_FLIPPER_FEATURES_FILE', 'FEATURES_FILE'):
            with self.subTest(setting), override_settings(**{setting: path}):
                Feature.objects.filter(name='beta').delete()
                self.assertEqual(run('loadfeatures'), 'Loaded 1 features.\n')
                self.assertTrue(Feature.objects.get(name='beta').enabled)
        self.assertEqual(run('loadfeatures'), 'settings.FEATURE_FLIPPER_FEATURES_FILE is not set.\n')

    def test_loadfeatures_refuses_a_bad_file_whole(self):
        bad = [
            [{'name': 'beta', 'description': '', 'enabled': True}, {'name': 'x', 'description': ''}],
            [{'name': 'beta', 'description': '', 'enabled': 'false'}],
            {'name': 'beta'},
            'not json',
        ]
        for content in bad:
            with self.subTest(content=content):
                with self.assertRaises(CommandError):
                    run('loadfeatures', self.features_file(content))
                self.assertFalse(Feature.objects.filter(name='beta').exists())
