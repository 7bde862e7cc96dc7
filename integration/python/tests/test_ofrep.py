"""flagproxy_django.ofrep: the OFREP client, against a fake flagproxy, and
the {% wafflejs %} loader."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory, SimpleTestCase, override_settings

from flagproxy_django import ofrep
from tests.test_templatetags import render


class FakeFlagproxy(BaseHTTPRequestHandler):
    """Answers OFREP single evaluations from ``answers`` (key → (status,
    body)) and records each request."""

    answers = {}
    seen = []
    delay = 0

    def do_POST(self):
        length = int(self.headers.get('Content-Length', 0))
        body = json.loads(self.rfile.read(length) or b'{}')
        type(self).seen.append({'path': self.path, 'body': body, 'auth': self.headers.get('Authorization'),
                                'type': self.headers.get('Content-Type')})
        if self.delay:
            time.sleep(self.delay)
        key = self.path.rsplit('/', 1)[-1]
        status, answer = self.answers.get(key, (404, {'key': key, 'errorCode': 'FLAG_NOT_FOUND', 'errorDetails': 'no flag'}))
        raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except ConnectionError:
            pass  # the client timed out

    def log_message(self, *args):
        pass


def success(key, value, reason='STATIC'):
    return 200, {'key': key, 'value': value, 'reason': reason, 'variant': 'on' if value else 'off', 'metadata': {}}


class OFREPClientTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = ThreadingHTTPServer(('127.0.0.1', 0), FakeFlagproxy)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.url = f'http://127.0.0.1:{cls.server.server_address[1]}'

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        super().tearDownClass()

    def setUp(self):
        FakeFlagproxy.seen = []
        FakeFlagproxy.delay = 0
        FakeFlagproxy.answers = {
            'beta': success('beta', True, 'TARGETING_MATCH'),
            'off': success('off', False),
            'switch%3Amaint': success('switch:maint', True),
            'sample%3Asurvey': success('sample:survey', True, 'SPLIT'),
            'flag%3Aswitch%3Ax': success('flag:switch:x', True),
            'down': (500, {'key': 'down', 'errorCode': 'GENERAL', 'errorDetails': 'no flags loaded yet'}),
            'notjson': (200, b'<html>'),
            'novalue': (200, {'key': 'novalue', 'reason': 'STATIC'}),
            'unauth': (401, {'errorDetails': 'a valid API key is required'}),
        }
        self.settings = override_settings(FLAGPROXY_OFREP_URL=self.url + '/', FLAGPROXY_OFREP_KEY='k' * 20)
        self.settings.enable()
        self.addCleanup(self.settings.disable)

    def test_request(self):
        user = type('User', (), {'is_authenticated': True, 'pk': 42})()
        self.assertIs(ofrep.flag_is_active('beta', user=user, path='/checkout/', query='a=1', language='fr',
                                           cookies={'dwf_beta': 'True'}), True)
        [seen] = FakeFlagproxy.seen
        self.assertEqual(seen['path'], '/ofrep/v1/evaluate/flags/beta')
        self.assertEqual(seen['auth'], 'Bearer ' + 'k' * 20)
        self.assertEqual(seen['type'], 'application/json')
        self.assertEqual(seen['body'], {'context': {'targetingKey': '42', 'path': '/checkout/', 'query': 'a=1',
                                                    'language': 'fr', 'cookies': {'dwf_beta': 'True'}}})

    def test_keys(self):
        self.assertIs(ofrep.switch_is_active('maint'), True)
        self.assertIs(ofrep.sample_is_active('survey', user=7), True)
        self.assertIs(ofrep.flag_is_active('switch:x'), True)  # a flag so named
        self.assertEqual([s['path'].rsplit('/', 1)[1] for s in FakeFlagproxy.seen],
                         ['switch%3Amaint', 'sample%3Asurvey', 'flag%3Aswitch%3Ax'])
        self.assertEqual(FakeFlagproxy.seen[1]['body'], {'context': {'targetingKey': '7'}})

    def test_anonymous_users_send_no_targeting_key(self):
        self.assertIs(ofrep.flag_is_active('off', user=AnonymousUser()), False)
        self.assertEqual(FakeFlagproxy.seen[0]['body'], {'context': {}})

    def test_failures_give_the_default(self):
        for name in ('nothing', 'down', 'notjson', 'novalue', 'unauth'):
            with self.subTest(name):
                with self.assertLogs('flagproxy', 'DEBUG') as logs:
                    self.assertIs(ofrep.flag_is_active(name), False)
                self.assertIn(name, logs.output[0])
                with override_settings(WAFFLE_FLAG_DEFAULT=True), self.assertLogs('flagproxy', 'DEBUG'):
                    self.assertIs(ofrep.flag_is_active(name), True)
                with self.assertLogs('flagproxy', 'DEBUG'):
                    self.assertIs(ofrep.flag_is_active(name, default=True), True)
        with override_settings(WAFFLE_SWITCH_DEFAULT=True), self.assertLogs('flagproxy', 'DEBUG'):
            self.assertIs(ofrep.switch_is_active('nothing'), True)

    def test_errors(self):
        with self.assertRaises(ofrep.OFREPError) as cm:
            ofrep.evaluate('down')
        self.assertEqual((cm.exception.code, cm.exception.details), ('GENERAL', 'no flags loaded yet'))
        with self.assertRaises(ofrep.OFREPError) as cm:
            ofrep.evaluate('nothing')
        self.assertEqual(cm.exception.code, 'FLAG_NOT_FOUND')
        self.assertEqual(ofrep.evaluate('beta')['reason'], 'TARGETING_MATCH')

    def test_timeout(self):
        FakeFlagproxy.delay = 0.5
        start = time.monotonic()
        with override_settings(FLAGPROXY_OFREP_TIMEOUT=0.05), self.assertLogs('flagproxy', 'WARNING') as logs:
            self.assertIs(ofrep.flag_is_active('beta'), False)
        self.assertLess(time.monotonic() - start, 0.45)
        self.assertIn('UNAVAILABLE', logs.output[0])

    def test_unreachable_and_unset(self):
        with override_settings(FLAGPROXY_OFREP_URL='http://127.0.0.1:9'), self.assertLogs('flagproxy', 'WARNING'):
            self.assertIs(ofrep.flag_is_active('beta'), False)
        with override_settings(FLAGPROXY_OFREP_URL=None), self.assertLogs('flagproxy', 'WARNING') as logs:
            self.assertIs(ofrep.flag_is_active('beta'), False)
        self.assertIn('FLAGPROXY_OFREP_URL is not set', logs.output[0])

    def test_request_context(self):
        request = RequestFactory().get('/caf%C3%A9/page', {'q': 'a b'}, HTTP_ACCEPT_LANGUAGE='fr-CH, fr;q=0.9',
                                       HTTP_COOKIE='sessionid=secret; dwf_beta=True')
        request.user = type('User', (), {'is_authenticated': True, 'pk': 5})()
        context = ofrep.request_context(request)
        self.assertEqual(context, {'targetingKey': '5', 'path': '/caf%C3%A9/page', 'query': 'q=a+b',
                                   'language': 'fr-CH, fr;q=0.9', 'cookies': {'dwf_beta': 'True'}})
        json.dumps(context)
        self.assertIs(ofrep.flag_is_active('beta', context=context, path='/other/'), True)
        self.assertEqual(FakeFlagproxy.seen[0]['body']['context'], dict(context, path='/other/'))


class WaffleJSLoaderTests(SimpleTestCase):
    @override_settings(FLAGPROXY_WAFFLEJS_URL='/_flagproxy/waffle.js?v=1&x="')
    def test_points_at_the_endpoint(self):
        output = render('{% load waffle_tags %}{% wafflejs %}')
        self.assertTrue(output.startswith('document.write("') and output.endswith('");'), output)
        self.assertNotIn('<', output)
        self.assertNotIn('FLAGS', output)
        written = json.loads(output[len('document.write('):-2])
        self.assertEqual(written, '<script src="/_flagproxy/waffle.js?v=1&amp;x=&quot;"></script>')
