"""The waffle drop-in: waffle's own API, models, views, admin and commands."""
import io
import json
import unittest

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory, TestCase

from flagproxy_django.decisions import Decisions, activate, deactivate
from flagproxy_django.testing import override_flags
from tests.helpers import inline_meta, payload

if settings.HAVE_WAFFLE:
    import waffle
    from waffle.testutils import override_flag, override_sample, override_switch

    from flagproxy_django.models import Flag, Sample, Switch

needs_waffle = unittest.skipUnless(settings.HAVE_WAFFLE, 'django-waffle is not installed')

HEADER = inline_meta(payload(flags={'checkout': True}, switches={'maintenance': True}, samples={'survey': True}))


def seed_rows(checkout=False, maintenance=False, survey='0.0'):
    """waffle rows that disagree with HEADER unless told otherwise."""
    Flag.objects.create(name='checkout', everyone=checkout)
    Switch.objects.create(name='maintenance', active=maintenance)
    Sample.objects.create(name='survey', percent=survey)


@needs_waffle
class HeaderTests(TestCase):
    """With a header, waffle's API answers from it and never asks the database."""

    def setUp(self):
        seed_rows()

    def test_view_template_switch_and_sample_follow_the_header(self):
        with self.assertNumQueries(0):
            data = self.client.get('/dropin/report/', **HEADER).json()
        self.assertEqual(data, {'view': True, 'template': 'on on', 'switch': True, 'sample': True})

    def test_get_builds_an_instance_without_a_query(self):
        request = RequestFactory().get('/')
        token = activate(Decisions(flags={'checkout': False}, state='ok'), request)
        try:
            with self.assertNumQueries(0):
                flag = waffle.get_waffle_flag_model().get('checkout')
                self.assertIsNone(flag.pk)
                self.assertFalse(flag.is_active(request))
                self.assertFalse(waffle.flag_is_active(request, 'unknown'))
        finally:
            deactivate(token)

    def test_decorator_and_mixin(self):
        for path in ('/dropin/decorated/', '/dropin/mixed/'):
            with self.subTest(path):
                self.assertEqual(self.client.get(path, **HEADER).status_code, 200)
                off = inline_meta(payload(flags={'checkout': False}))
                self.assertEqual(self.client.get(path, **off).status_code, 404)

    def test_waffle_status_and_wafflejs(self):
        with self.assertNumQueries(0):
            status = self.client.get('/waffle/waffle_status', **HEADER).json()
            js = self.client.get('/waffle/wafflejs', **HEADER).content.decode()
        self.assertEqual(status['flags'], {'checkout': {'is_active': True, 'last_modified': None}})
        self.assertEqual(status['switches']['maintenance']['is_active'], True)
        self.assertIn('"checkout": true', js.replace("'", '"').lower())

    def test_rejected_header_gives_defaults_without_asking_waffle(self):
        Flag.objects.filter(name='checkout').update(everyone=True)
        bad = {'HTTP_X_FLAGPROXY_FLAGS': '{not json'}
        with self.assertNumQueries(0), self.assertLogs('flagproxy', 'WARNING'):
            data = self.client.get('/dropin/report/', **bad).json()
        self.assertEqual(data, {'view': False, 'template': 'off off', 'switch': False, 'sample': False})

    def test_flagproxy_override_flags_wins_over_the_header(self):
        with override_flags(flags={'checkout': False}, switches={'maintenance': False}):
            data = self.client.get('/dropin/report/', **HEADER).json()
        self.assertEqual((data['view'], data['template'], data['switch']), (False, 'off off', False))


@needs_waffle
class NoHeaderTests(TestCase):
    """Without a header (the test client, a worker) waffle's own code answers."""

    def test_rows_answer(self):
        seed_rows(checkout=True, maintenance=True, survey='100.0')
        data = self.client.get('/dropin/report/').json()
        self.assertEqual(data, {'view': True, 'template': 'on on', 'switch': True, 'sample': True})

    def test_waffle_testutils(self):
        with override_flag('checkout', active=True), override_switch('maintenance', active=True), \
                override_sample('survey', active=True):
            data = self.client.get('/dropin/report/').json()
            self.assertEqual(self.client.get('/dropin/decorated/').status_code, 200)
        self.assertEqual(data, {'view': True, 'template': 'on on', 'switch': True, 'sample': True})
        with override_flag('checkout', active=False):
            self.assertEqual(self.client.get('/dropin/decorated/').status_code, 404)
        self.assertFalse(Flag.objects.filter(name='checkout').exists())

    def test_outside_a_request(self):
        Switch.objects.create(name='maintenance', active=True)
        self.assertTrue(waffle.switch_is_active('maintenance'))
        self.assertFalse(waffle.switch_is_active('unknown'))
        self.assertFalse(waffle.flag_is_active(RequestFactory().get('/'), 'checkout'))

    def test_flagproxy_waffle_functions_agree(self):
        from flagproxy_django import waffle as fp_waffle

        Flag.objects.create(name='checkout', everyone=True)
        self.assertTrue(fp_waffle.flag_is_active(RequestFactory().get('/'), 'checkout'))


@needs_waffle
class TablesTests(TestCase):
    """The drop-in's models are waffle's tables; waffle's tools write them."""

    def test_tables_come_from_waffles_migrations(self):
        tables = set(connection.introspection.table_names())
        self.assertLessEqual({'waffle_flag', 'waffle_flag_users', 'waffle_flag_groups', 'waffle_switch',
                              'waffle_sample'}, tables)
        self.assertFalse({t for t in tables if t.startswith('flagproxy_django_')})

    def test_no_migration_is_missing(self):
        call_command('makemigrations', '--check', '--dry-run', stdout=io.StringIO())

    def test_management_commands(self):
        User.objects.create_user('ann')
        Group.objects.create(name='qa')
        out = io.StringIO()
        call_command('waffle_flag', 'checkout', '--create', '--percent', '30', '--user', 'ann', '--group', 'qa',
                     stdout=out)
        call_command('waffle_switch', 'maintenance', 'on', '--create', stdout=out)
        call_command('waffle_sample', 'survey', '40', '--create', stdout=out)
        with connection.cursor() as c:
            c.execute('SELECT f.percent, u.username, g.name FROM waffle_flag f'
                      ' JOIN waffle_flag_users fu ON fu.flag_id = f.id JOIN auth_user u ON u.id = fu.user_id'
                      ' JOIN waffle_flag_groups fg ON fg.flag_id = f.id JOIN auth_group g ON g.id = fg.group_id')
            self.assertEqual([(float(p), u, g) for p, u, g in c.fetchall()], [(30.0, 'ann', 'qa')])
            c.execute('SELECT active FROM waffle_switch WHERE name = %s', ['maintenance'])
            self.assertEqual(c.fetchone()[0], True)
        call_command('waffle_delete', '--flags', 'checkout', '--switches', 'maintenance', '--samples', 'survey',
                     stdout=out)
        self.assertEqual((Flag.objects.count(), Switch.objects.count(), Sample.objects.count()), (0, 0, 0))


@needs_waffle
class AdminTests(TestCase):
    def setUp(self):
        self.flag = Flag.objects.create(name='checkout', percent='12.5')
        self.flag.users.add(User.objects.create_user('ann'))
        self.flag.groups.add(Group.objects.create(name='qa'))

    def test_changelist_and_change(self):
        self.client.force_login(User.objects.create_superuser('root', 'root@example.com', 'pw'))
        changelist = self.client.get('/admin/flagproxy_django/flag/')
        self.assertContains(changelist, 'checkout')
        change = self.client.get(f'/admin/flagproxy_django/flag/{self.flag.pk}/change/')
        self.assertContains(change, '(ann)')  # waffle's user widget
        form = {'name': 'checkout', 'everyone': 'true', 'percent': '12.5', 'superusers': 'on', 'languages': '',
                'note': 'n', 'users': str(self.flag.users.get().pk), 'groups': [str(self.flag.groups.get().pk)],
                'created_0': '2024-01-01', 'created_1': '00:00:00', 'modified_0': '2024-01-01', 'modified_1': '00:00:00'}
        response = self.client.post(f'/admin/flagproxy_django/flag/{self.flag.pk}/change/', form)
        self.assertEqual(response.status_code, 302, getattr(response, 'context', None) and
                         response.context['adminform'].form.errors)
        self.flag.refresh_from_db()
        self.assertEqual((self.flag.everyone, self.flag.users.count(), self.flag.groups.count()), (True, 1, 1))

    def test_staff_keep_their_waffle_permissions(self):
        # An existing site has waffle's content types and grants.
        ct, _ = ContentType.objects.get_or_create(app_label='waffle', model='flag')
        perm, _ = Permission.objects.get_or_create(content_type=ct, codename='change_flag',
                                                   defaults={'name': 'Can change flag'})
        staff = User.objects.create_user('staff', is_staff=True)
        staff.user_permissions.add(perm)
        self.client.force_login(staff)
        self.assertEqual(self.client.get('/admin/flagproxy_django/flag/').status_code, 200)
        self.assertEqual(self.client.get('/admin/flagproxy_django/switch/').status_code, 403)


@needs_waffle
class SettingsFileTests(TestCase):
    def test_the_proxy_reads_waffles_tables(self):
        out = io.StringIO()
        call_command('flagproxy_settings', stdout=out)
        data = json.loads(out.getvalue())
        self.assertEqual((data['WAFFLE_FLAG_MODEL'], data['WAFFLE_SWITCH_MODEL'], data['WAFFLE_SAMPLE_MODEL']),
                         ('waffle.Flag', 'waffle.Switch', 'waffle.Sample'))
        self.assertEqual(data['FLAGPROXY_WAFFLE_FLAG_TABLE'], 'waffle_flag')
