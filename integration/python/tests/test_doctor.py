"""manage.py flagproxy_doctor's parts: the probe, the system checks, the checks
that need no flagproxy. (integration/doctor_test.go runs it against flagproxy.)"""
import io
import json
import os
import socket
import tempfile
from unittest import mock

from django.core import checks, signing
from django.core.management import CommandError, call_command
from django.test import LiveServerTestCase, RequestFactory, SimpleTestCase, TestCase, override_settings

from flagproxy_django import doctor, probe
from flagproxy_django.featureflipper.models import Feature
from flagproxy_django.middleware import FlagproxyMiddleware
from flagproxy_django.proxy_settings import collect
from tests.helpers import inline_meta, payload, sign

MW = 'flagproxy_django.middleware.FlagproxyMiddleware'
WAFFLE_MW = 'waffle.middleware.WaffleMiddleware'


def served(meta):
    """What FlagproxyMiddleware answers for a request with ``meta``."""
    return FlagproxyMiddleware(lambda request: 'the view')(RequestFactory().get('/', **meta))


class ProbeTests(SimpleTestCase):
    def test_a_valid_token_is_answered_without_flag_values(self):
        meta = dict(inline_meta(payload(flags={'secret_flag': True}, version='abc')),
                    HTTP_FLAGPROXY_DOCTOR=probe.make_token())
        answer = json.loads(served(meta).content)
        self.assertEqual(answer, {'flagproxy_probe': 1, 'header': True, 'signature_header': False,
                                  'signature_checked': False, 'error': None, 'state': 'ok', 'version': 'abc'})
        self.assertNotIn('secret_flag', json.dumps(answer))

    @override_settings(FLAGPROXY_SIGNING_KEY='k')
    def test_reports_a_refused_signature(self):
        meta = sign(inline_meta(payload()), b'other', 10**9)
        answer = json.loads(served(dict(meta, HTTP_FLAGPROXY_DOCTOR=probe.make_token())).content)
        self.assertTrue(answer['signature_header'] and answer['signature_checked'])
        self.assertIn('X-Flagproxy-Signature', answer['error'])

    def test_other_tokens_are_served_as_usual(self):
        expired = signing.TimestampSigner(salt='flagproxy_django.probe')
        with mock.patch('django.core.signing.time.time', return_value=1_000_000):
            old = expired.sign('nonce')
        forged = signing.TimestampSigner(key='not-the-secret-key', salt='flagproxy_django.probe').sign('nonce')
        for token in ('', 'junk', old, forged, probe.make_token() + 'x', 'a' * 10_000):
            with self.subTest(token=token[:40]):
                self.assertEqual(served({'HTTP_FLAGPROXY_DOCTOR': token}), 'the view')


class SystemCheckTests(SimpleTestCase):
    def ids(self):
        return [m.id for m in checks.run_checks(tags=['flagproxy'])]

    def test_clean_setup(self):
        with override_settings(MIDDLEWARE=['django.middleware.common.CommonMiddleware', MW,
                                           'tests.flag_middleware.ReadsFlags']):
            self.assertEqual(self.ids(), [])

    def test_leftover_waffle_middleware(self):
        with override_settings(MIDDLEWARE=[MW, WAFFLE_MW]):
            self.assertEqual(self.ids(), ['flagproxy.W002'])

    def test_a_flag_reader_before_flagproxy(self):
        with override_settings(MIDDLEWARE=['tests.flag_middleware.ReadsFlags', MW]):
            found = checks.run_checks(tags=['flagproxy'])
        self.assertEqual([m.id for m in found], ['flagproxy.W003'])
        self.assertIn('tests.flag_middleware.ReadsFlags', found[0].msg)

    def test_missing_middleware(self):
        with override_settings(MIDDLEWARE=['tests.flag_middleware.ReadsFlags']):
            self.assertEqual(self.ids(), ['flagproxy.W001'])


def closed_port_url():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return f'http://127.0.0.1:{s.getsockname()[1]}'


class DoctorOfflineTests(TestCase):
    """The checks that need this site only, and what the others say without flagproxy."""

    def settings_file(self, data):
        fd, path = tempfile.mkstemp(suffix='.json')
        with os.fdopen(fd, 'w') as f:
            json.dump(data, f)
        self.addCleanup(os.unlink, path)
        return path

    def test_settings_file(self):
        current = json.loads(json.dumps(collect()[0]))
        path = self.settings_file(current)
        self.assertEqual(doctor.Doctor('http://x', 'http://x', path).settings_file_current().status, doctor.OK)
        stale = self.settings_file(dict(current, SECRET_KEY='old', WAFFLE_SECURE=not current['WAFFLE_SECURE']))
        r = doctor.Doctor('http://x', 'http://x', stale).settings_file_current()
        self.assertEqual(r.status, doctor.FAIL)
        self.assertIn("'SECRET_KEY', 'WAFFLE_SECURE'", r.detail)
        self.assertNotIn('old', r.detail.replace(stale, ''))  # names, never values
        self.assertIn('flagproxy_settings -o', r.advice)
        self.assertEqual(doctor.Doctor('http://x', 'http://x').settings_file_current().status, doctor.SKIP)

    def test_middleware(self):
        for middleware, status, says in (([MW], doctor.OK, ''), ([MW, WAFFLE_MW], doctor.FAIL, 'Remove'),
                                         ([], doctor.FAIL, 'Add')):
            with self.subTest(middleware), override_settings(MIDDLEWARE=middleware):
                r = doctor.Doctor('http://x', 'http://x').middleware()
                self.assertEqual(r.status, status)
                self.assertIn(says, r.advice)

    def test_site_names(self):
        Feature.objects.create(name='search')
        with override_settings(FLAGS={'BETA': [], 'GAMMA': [{'condition': 'boolean', 'value': True}]}):
            names = doctor.Doctor('http://x', 'http://x').site_names()
        self.assertEqual(names[('flags', 'featureflipper')], {'search'})
        self.assertEqual(names[('flags', 'django-flags')], {'BETA', 'GAMMA'})
        if ('flags', 'waffle') in names:  # with django-waffle installed
            self.assertEqual(names[('flags', 'waffle')], set())

    def test_compare_snapshot_names(self):
        status = {'sources': ['waffle', 'featureflipper'],
                  'flags': [{'name': 'a', 'source': 'waffle', 'conflict': ['featureflipper']},
                            {'name': 'b', 'source': 'featureflipper'}],
                  'switches': [{'name': 's'}], 'samples': []}
        theirs = doctor._snapshot_names(status)
        self.assertEqual(theirs, {('flags', 'waffle'): {'a'}, ('flags', 'featureflipper'): {'a', 'b'},
                                  ('switches', 'waffle'): {'s'}, ('samples', 'waffle'): set()})
        self.assertEqual(doctor._compare(('flags', 'featureflipper'), {'a', 'c'}, theirs[('flags', 'featureflipper')]),
                         ["featureflipper flags missing in flagproxy: 'c'", "featureflipper flags only in flagproxy: 'b'"])
        self.assertEqual(doctor._compare(('flags', 'featureflag'), {'k'}, None),
                         ['flagproxy does not read the featureflag flags this site has (1)'])

    def test_command_fails_without_flagproxy(self):
        url = closed_port_url()
        out = io.StringIO()
        with override_settings(MIDDLEWARE=[MW]), self.assertRaises(CommandError) as caught:
            call_command('flagproxy_doctor', '--proxy-url', url, '--admin-url', url, '--timeout', '2', stdout=out)
        self.assertEqual(caught.exception.returncode, 1)
        text = out.getvalue()
        self.assertIn('[FAIL] proxy in front: cannot reach flagproxy', text)
        self.assertIn('→ Start flagproxy, or pass --proxy-url', text)
        self.assertIn('[skip] sessions', text)
        self.assertIn('[skip] database', text)


@override_settings(MIDDLEWARE=[MW], ALLOWED_HOSTS=['*'], STATIC_URL='/static/')
class DoctorBypassTests(LiveServerTestCase):
    """The site itself, reached without flagproxy: the probe finds no header."""

    def test_no_header(self):
        front, sig = doctor.Doctor(self.live_server_url, closed_port_url()).proxy_in_front()
        self.assertEqual(front.status, doctor.FAIL)
        self.assertIn('without an X-Flagproxy-Flags header', front.detail)
        self.assertIn('is not flagproxy', front.advice)

    def test_a_site_that_is_not_this_one(self):
        # A token made with another SECRET_KEY: the site serves the request as usual.
        other = signing.TimestampSigner(key='another site', salt='flagproxy_django.probe')
        with mock.patch.object(doctor, 'make_token', lambda: other.sign('nonce')):
            front, _ = doctor.Doctor(self.live_server_url, closed_port_url()).proxy_in_front()
        self.assertEqual(front.status, doctor.FAIL)
        self.assertIn('without reaching FlagproxyMiddleware', front.detail)
