"""Shadow mode: header answers compared with waffle's own, and the report."""
import io
import json
import logging
import os
import tempfile
import unittest

from django.conf import settings
from django.core.management import call_command
from django.test import TestCase, override_settings

from flagproxy_django import shadow
from tests.helpers import inline_meta, payload

if settings.HAVE_WAFFLE:
    from flagproxy_django.models import Flag, Sample, Switch

needs_waffle = unittest.skipUnless(settings.HAVE_WAFFLE, 'django-waffle is not installed')


def header(flags=None, switches=None, samples=None, sources=None):
    return inline_meta(payload(flags=flags, switches=switches, samples=samples, sources=sources, version='v7'))


@needs_waffle
# WaffleMiddleware left in place, as on a site moving off waffle: shadow mode
# must give it nothing to write.
@override_settings(FLAGPROXY_SHADOW=True,
                   MIDDLEWARE=[*settings.MIDDLEWARE, 'waffle.middleware.WaffleMiddleware'])
class CompareTests(TestCase):
    def setUp(self):
        shadow.reset()
        Flag.objects.create(name='checkout', everyone=False)
        Switch.objects.create(name='maintenance', active=False)
        Sample.objects.create(name='survey', percent='0.0')

    def get(self, meta, path='/dropin/report/'):
        with self.assertLogs('flagproxy.shadow', 'WARNING') as logs:
            logging.getLogger('flagproxy.shadow').warning('(marker)')
            response = self.client.get(path, **meta)
        return response, [json.loads(r.getMessage()[len(shadow.MARKER):]) for r in logs.records
                          if r.getMessage().startswith(shadow.MARKER)]

    def test_a_disagreement_is_logged_and_counted(self):
        response, logged = self.get(header({'checkout': True}, {'maintenance': True}, {'survey': True}))
        self.assertEqual(response.json()['view'], True)  # the header still answers
        self.assertEqual({(m['kind'], m['name'], m['header'], m['waffle']) for m in logged}, {
            ('flags', 'checkout', True, False), ('switches', 'maintenance', True, False),
            ('samples', 'survey', True, False)})
        flag = next(m for m in logged if m['kind'] == 'flags')
        self.assertEqual((flag['source'], flag['version'], flag['path'], flag['user']),
                         ('site', 'v7', '/dropin/report/', 'anonymous'))
        # view and template read the flag: two mismatches.
        self.assertEqual(shadow.mismatches()[('flags', 'checkout')], 2)

    def test_agreement_and_expected_differences_are_quiet(self):
        Sample.objects.filter(name='survey').update(percent='50.0')
        for sources in ({'checkout': 'url'}, {'checkout': 'session'}):
            with self.subTest(sources):
                _, logged = self.get(header({'checkout': True}, {'maintenance': False}, {'survey': True}, sources))
                self.assertEqual(logged, [])
        self.assertEqual(shadow.mismatches(), {})

    def test_rolls(self):
        # The proxy rolled and waffle would roll: independent draws, quiet.
        Flag.objects.filter(name='checkout').update(everyone=None, percent='50.0')
        for value in (True, False):
            _, logged = self.get(header({'checkout': value}, sources={'checkout': 'roll'}))
            self.assertEqual([m for m in logged if m['name'] == 'checkout'], [])
        # The proxy rolled where waffle's rules decide: the rules disagree.
        Flag.objects.filter(name='checkout').update(everyone=False)
        _, logged = self.get(header({'checkout': True}, sources={'checkout': 'roll'}))
        self.assertEqual({(m['name'], m['source']) for m in logged}, {('checkout', 'roll')})

    def test_the_dwf_cookie_is_compared(self):
        Flag.objects.filter(name='checkout').update(everyone=None, percent='50.0')
        self.client.cookies['dwf_checkout'] = 'True'
        response, logged = self.get(header({'checkout': False}, sources={'checkout': 'cookie'}))
        self.assertEqual([(m['header'], m['waffle'], m['source']) for m in logged][:1], [(False, True, 'cookie')])
        self.assertNotIn('dwf_checkout', response.cookies)  # read-only: waffle set no cookie

    def test_testing_mode_stays_read_only(self):
        Flag.objects.filter(name='checkout').update(everyone=None, testing=True)
        response, logged = self.get(dict(header({'checkout': True}, sources={'checkout': 'query'})),
                                    path='/dropin/report/?dwft_checkout=1')
        self.assertEqual([m for m in logged if m['name'] == 'checkout'], [])
        self.assertNotIn('dwft_checkout', response.cookies)

    def test_rejected_header_is_not_compared(self):
        with self.assertLogs('flagproxy', 'WARNING') as logs:
            self.client.get('/dropin/report/', HTTP_X_FLAGPROXY_FLAGS='[]')
        self.assertFalse([r for r in logs.records if r.name == 'flagproxy.shadow'])

    @override_settings(FLAGPROXY_SHADOW=False)
    def test_off_compares_nothing(self):
        with self.assertNumQueries(0):
            self.client.get('/dropin/report/', **header({'checkout': True}))
        self.assertEqual(shadow.mismatches(), {})


LINE = 'WARNING 2025-01-01 flagproxy.shadow ' + shadow.MARKER


class ReportTests(TestCase):
    def write(self, lines):
        fd, path = tempfile.mkstemp(suffix='.log')
        with os.fdopen(fd, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        self.addCleanup(os.remove, path)
        return path

    def mismatch(self, **kw):
        m = {'kind': 'flags', 'name': 'checkout', 'header': True, 'waffle': False, 'source': 'site',
             'user': 'anonymous', 'path': '/cart/', 'time': '2025-01-01T00:00:00+00:00'}
        m.update(kw)
        return LINE + json.dumps(m)

    def run_report(self, *args):
        out = io.StringIO()
        call_command('flagproxy_shadow_report', *args, stdout=out)
        return out.getvalue()

    def test_summary(self):
        path = self.write([
            'INFO unrelated line',
            self.mismatch(user='1:ann', time='2025-01-02T00:00:00+00:00'),
            self.mismatch(),
            self.mismatch(kind='switches', name='maintenance', header=False, waffle=True),
            LINE + '{"kind": "flags"',
            LINE + '{"kind": 1, "name": "x", "header": true, "waffle": false}',
        ])
        data = json.loads(self.run_report('--json', path))
        self.assertEqual(data['unreadable_lines'], 2)
        first = data['mismatches'][0]
        self.assertEqual((first['kind'], first['name'], first['count']), ('flags', 'checkout', 2))
        self.assertEqual(first['answers'], {'header on, waffle off': 2})
        self.assertEqual(first['users'], {'1:ann': 1, 'anonymous': 1})
        self.assertEqual((first['first'], first['last']), ('2025-01-01T00:00:00+00:00', '2025-01-02T00:00:00+00:00'))
        text = self.run_report(path)
        self.assertIn('3 shadow mismatches of 2 names', text)
        self.assertIn('switch maintenance: 1', text)

    def test_fail_flag_and_empty_log(self):
        empty = self.write(['nothing here'])
        self.assertIn('No shadow mismatches', self.run_report('--fail', empty))
        with self.assertRaises(SystemExit) as e:
            self.run_report('--fail', self.write([self.mismatch()]))
        self.assertEqual(e.exception.code, 1)

    def test_log_setting_and_errors(self):
        from django.core.management import CommandError

        with self.assertRaises(CommandError):
            self.run_report()
        with override_settings(FLAGPROXY_SHADOW_LOG=self.write([self.mismatch()])):
            self.assertIn('flag checkout: 1', self.run_report())
        with self.assertRaises(CommandError):
            self.run_report('/nonexistent/shadow.log')

    @needs_waffle
    @override_settings(FLAGPROXY_SHADOW=True)
    def test_lines_the_handler_writes_are_read_back(self):
        Flag.objects.create(name='checkout', everyone=False)
        path = self.write([])
        handler = shadow.ShadowLogHandler(path)
        shadow.logger.addHandler(handler)
        try:
            self.client.get('/dropin/report/', **header({'checkout': True}))
        finally:
            shadow.logger.removeHandler(handler)
            handler.close()
        self.assertIn('flag checkout: 2', self.run_report(path))
