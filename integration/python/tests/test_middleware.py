"""FlagproxyMiddleware through Django's test client."""
import base64
import gzip
import hashlib
import json
import logging
import os
import time
from unittest import mock

import django
from django.test import SimpleTestCase, override_settings

from flagproxy_django.decisions import Decisions, FeatureDict, FeaturesPanel, current
from flagproxy_django.signals import feature_defaulted
from flagproxy_django.waffle import switch_is_active
from tests.helpers import dumps, inline_meta, large_meta, payload, sign, without_dropin

KEY = b'middleware-key'
DEFAULTS = 'every flag, switch and sample takes its default'

FULL = payload(
    flags={'new_ui': True, 'search': False, 'beta': True, 'profile': True, 'tested': False},
    switches={'maintenance': True}, samples={'survey': True},
    sources={'beta': 'url', 'profile': 'session', 'tested': 'cookie'}, version='snap-1')


def async_headers(meta):
    """Test-client keyword arguments that send ``meta``'s headers over ASGI."""
    headers = {key[len('HTTP_'):].lower().replace('_', '-'): value for key, value in meta.items()}
    return {'headers': headers} if django.VERSION >= (4, 2) else headers


class AcceptedHeaderTests(SimpleTestCase):
    def get(self, meta, path='/report/'):
        response = self.client.get(path, **meta)
        self.assertEqual(response.status_code, 200)
        return response.json()

    def assertFull(self, got):
        self.assertEqual(got['flags'], FULL['flags'])
        self.assertEqual(got['features'], FULL['flags'])
        self.assertEqual((got['switches'], got['samples']), (FULL['switches'], FULL['samples']))
        self.assertEqual((got['version'], got['state'], got['error']), ('snap-1', 'ok', None))
        self.assertEqual(got['panel'], {
            'new_ui': [True, 'site'], 'search': [False, 'site'], 'beta': [True, 'url'],
            'profile': [True, 'session'], 'tested': [False, 'cookie']})
        self.assertEqual((got['flag_new_ui'], got['switch_maintenance'], got['sample_survey']), (True, True, True))

    def test_inline(self):
        self.assertFull(self.get(inline_meta(FULL)))

    def test_large(self):
        self.assertFull(self.get(large_meta(FULL, part_size=50)))

    @override_settings(FLAGPROXY_SIGNING_KEY='middleware-key')
    def test_signed(self):
        self.assertFull(self.get(sign(inline_meta(FULL), KEY, int(time.time()))))

    @override_settings(FLAGPROXY_SIGNING_KEY=['old-key', b'middleware-key'])
    def test_signed_with_one_of_several_keys(self):
        self.assertFull(self.get(sign(large_meta(FULL, part_size=50), KEY, int(time.time()))))

    @override_settings(FLAGPROXY_SIGNING_KEY='fixture-signing-key', FLAGPROXY_SIGNATURE_MAX_AGE=10 ** 12)
    def test_headers_recorded_from_the_go_proxy(self):
        with open(os.path.join(os.path.dirname(__file__), 'testdata', 'go_headers.json'), encoding='utf-8') as f:
            fixture = json.load(f)
        self.assertEqual(fixture['signing_key'], 'fixture-signing-key')
        for case in fixture['cases']:
            with self.subTest(case['name']):
                meta = {'HTTP_' + k.upper().replace('-', '_'): v for k, v in case['headers'].items()}
                got = self.get(meta)
                self.assertEqual(got['flags'], case['expect']['flags'])
                self.assertEqual(got['switches'], case['expect']['switches'])
                self.assertEqual(got['panel']['search'], [True, 'url'])
                self.assertEqual(got['panel']['beta'], [True, 'session'])
                self.assertEqual(got['panel']['profile'], [True, 'site'])

    def test_stale_values_are_used(self):
        with self.assertLogs('flagproxy', logging.DEBUG) as logs:
            got = self.get(inline_meta(dict(FULL, state='stale')))
        self.assertEqual(got['flags'], FULL['flags'])
        self.assertEqual(got['state'], 'stale')
        self.assertEqual([r.levelno for r in logs.records], [logging.INFO])
        self.assertIn('stale', logs.output[0])

    @without_dropin
    def test_decisions_are_current_only_during_the_request(self):
        self.get(inline_meta(FULL))
        self.assertEqual(current().error, 'no request is being processed')
        self.assertFalse(switch_is_active('maintenance'))

    async def test_async_view(self):
        response = await self.async_client.get('/async/', **async_headers(inline_meta(FULL)))
        self.assertEqual(response.json(), {'switch_maintenance': True, 'state': 'ok'})

    def test_unknown_feature_defaults_and_signals(self):
        seen = []

        def receiver(sender, feature, features, **kwargs):
            seen.append((sender, feature, features))

        feature_defaulted.connect(receiver)
        self.addCleanup(feature_defaulted.disconnect, receiver)
        response = self.client.get('/report/', **inline_meta(FULL))
        features = response.wsgi_request.features
        self.assertIs(features['nothing'], False)
        self.assertIsNone(features.get('nothing'))
        self.assertNotIn('nothing', features)
        self.assertIs(features['new_ui'], True)
        self.assertEqual(seen, [(FeatureDict, 'nothing', features)])
        self.assertIs(seen[0][2], features)

    def test_panel(self):
        panel = self.client.get('/report/', **inline_meta(FULL)).wsgi_request.features_panel
        self.assertIsInstance(panel, FeaturesPanel)
        self.assertEqual(panel.enabled('beta'), True)
        self.assertEqual(panel.source('beta'), 'url')
        self.assertEqual(panel.source('search'), 'site')
        with self.assertRaises(KeyError):
            panel.source('nothing')
        with self.assertRaises(KeyError):
            panel.enabled('nothing')
        self.assertEqual([source for source, _ in panel.sources], ['site', 'cookie', 'session', 'url'])
        self.assertEqual(dict(panel.sources)['site'], [('new_ui', True), ('search', False)])
        self.assertEqual(panel.states(), FULL['flags'])

    def test_panel_of_no_flags_has_feature_flippers_three_layers(self):
        panel = FeaturesPanel.from_decisions(Decisions.empty('none'))
        self.assertEqual(panel.sources, [('site', []), ('session', []), ('url', [])])

    def test_result_object(self):
        d = self.client.get('/report/', **inline_meta(FULL)).wsgi_request.flagproxy
        self.assertIsInstance(d, Decisions)
        self.assertEqual((d.flags, d.sources, d.version, d.state), (FULL['flags'], FULL['sources'], 'snap-1', 'ok'))


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def _bad_pointer(text=b'{}', **change):
    pointer = {'encoding': 'gzip+base64url', 'parts': 1, 'sha256': hashlib.sha256(text).hexdigest(),
               'version': 'v', 'state': 'ok'}
    pointer.update(change)
    return dumps(pointer)


_GOOD_TEXT = dumps(FULL).encode('ascii')
_NOW = int(time.time())

#: label -> (request.META, settings, fragment of the logged reason)
BAD_HEADERS = {
    'missing': ({}, {}, 'no X-Flagproxy-Flags header'),
    'bad JSON': ({'HTTP_X_FLAGPROXY_FLAGS': '{"flags": tru'}, {}, 'not valid JSON'),
    'non-object': ({'HTTP_X_FLAGPROXY_FLAGS': '["flags"]'}, {}, 'not an object'),
    'wrong types': (inline_meta(dict(FULL, flags={'new_ui': 'yes'})), {}, '"flags" must be'),
    'bad base64': ({'HTTP_X_FLAGPROXY_FLAGS': _bad_pointer(_GOOD_TEXT), 'HTTP_X_FLAGPROXY_FLAGS_1': '$$$$'}, {},
                   'base64url'),
    'bad gzip': ({'HTTP_X_FLAGPROXY_FLAGS': _bad_pointer(_GOOD_TEXT), 'HTTP_X_FLAGPROXY_FLAGS_1': _b64(_GOOD_TEXT)},
                 {}, 'not valid gzip'),
    'sha mismatch': ({'HTTP_X_FLAGPROXY_FLAGS': _bad_pointer(b'other'),
                      'HTTP_X_FLAGPROXY_FLAGS_1': _b64(gzip.compress(_GOOD_TEXT))}, {}, 'sha256'),
    'too many parts': ({'HTTP_X_FLAGPROXY_FLAGS': _bad_pointer(parts=17)}, {}, '1 to 16 parts'),
    'missing part': (dict(large_meta(FULL, part_size=40), HTTP_X_FLAGPROXY_FLAGS_2=''), {},
                     'X-Flagproxy-Flags-2 of'),
    'bad signature': (sign(inline_meta(FULL), b'wrong', _NOW), {'FLAGPROXY_SIGNING_KEY': KEY}, 'does not match'),
    'old signature': (sign(inline_meta(FULL), KEY, _NOW - 3600), {'FLAGPROXY_SIGNING_KEY': KEY}, 's old'),
    'future signature': (sign(inline_meta(FULL), KEY, _NOW + 3600), {'FLAGPROXY_SIGNING_KEY': KEY}, 'in the future'),
    'short max age': (sign(inline_meta(FULL), KEY, _NOW - 120),
                      {'FLAGPROXY_SIGNING_KEY': KEY, 'FLAGPROXY_SIGNATURE_MAX_AGE': 60}, 's old'),
    'signature required but absent': (inline_meta(FULL), {'FLAGPROXY_SIGNING_KEY': KEY},
                                      'X-Flagproxy-Signature is missing'),
    'unavailable': (inline_meta(dict(FULL, state='unavailable')), {}, 'state "unavailable"'),
    'huge bad value': ({'HTTP_X_FLAGPROXY_FLAGS': '{' + 'x' * 200000}, {}, '200001 characters'),
}


@without_dropin
class RejectedHeaderTests(SimpleTestCase):
    """Every bad header: one clear log record, and every name its default."""

    def test_bad_headers(self):
        for label, (meta, changed, fragment) in BAD_HEADERS.items():
            with self.subTest(label), override_settings(**changed):
                with self.assertLogs('flagproxy', logging.DEBUG) as logs:
                    response = self.client.get('/report/', **meta)
                self.assertEqual(response.status_code, 200)
                self.assertEqual(len(logs.records), 1, logs.output)
                record = logs.records[0]
                self.assertEqual(record.levelno, logging.WARNING)
                message = record.getMessage()
                self.assertIn(fragment, message)
                self.assertIn('GET /report/', message)
                self.assertIn(DEFAULTS, message)
                self.assertLess(len(message), 600)
                got = response.json()
                self.assertEqual((got['flags'], got['switches'], got['samples'], got['features']), ({}, {}, {}, {}))
                self.assertEqual(got['state'], 'unavailable')
                self.assertIn(fragment, got['error'])
                self.assertEqual((got['flag_new_ui'], got['switch_maintenance'], got['sample_survey']),
                                 (False, False, False))

    @override_settings(WAFFLE_FLAG_DEFAULT=True, WAFFLE_SWITCH_DEFAULT=True, WAFFLE_SAMPLE_DEFAULT=True)
    def test_rejected_header_gives_waffle_defaults_not_the_header(self):
        meta = inline_meta(dict(FULL, flags={'new_ui': False}, switches={'maintenance': False},
                                samples={'survey': False}, state='unavailable'))
        with self.assertLogs('flagproxy', logging.WARNING):
            got = self.client.get('/report/', **meta).json()
        self.assertEqual((got['flag_new_ui'], got['switch_maintenance'], got['sample_survey']), (True, True, True))
        self.assertEqual(got['features'], {})

    def test_unavailable_keeps_the_version(self):
        with self.assertLogs('flagproxy', logging.WARNING):
            got = self.client.get('/report/', **inline_meta(dict(FULL, state='unavailable'))).json()
        self.assertEqual(got['version'], 'snap-1')

    def test_invalid_settings_are_logged_as_errors(self):
        for changed in ({'FLAGPROXY_SIGNING_KEY': ''}, {'FLAGPROXY_SIGNING_KEY': []},
                        {'FLAGPROXY_SIGNING_KEY': 42}, {'FLAGPROXY_SIGNATURE_MAX_AGE': 0},
                        {'FLAGPROXY_SIGNATURE_MAX_AGE': '300'}):
            with self.subTest(changed), override_settings(**changed):
                with self.assertLogs('flagproxy', logging.DEBUG) as logs:
                    got = self.client.get('/report/', **inline_meta(FULL)).json()
                self.assertEqual([r.levelno for r in logs.records], [logging.ERROR])
                self.assertIn('FLAGPROXY_', logs.records[0].getMessage())
                self.assertEqual(got['flags'], {})

    def test_unexpected_errors_do_not_break_the_site(self):
        with mock.patch('flagproxy_django.middleware.read_flags', side_effect=RuntimeError('boom')):
            with self.assertLogs('flagproxy', logging.DEBUG) as logs:
                response = self.client.get('/report/', **inline_meta(FULL))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()['flags'], {})
        self.assertEqual([r.levelno for r in logs.records], [logging.ERROR])
        self.assertIsNotNone(logs.records[0].exc_info)

    def test_long_path_is_cut(self):
        with self.assertLogs('flagproxy', logging.WARNING) as logs:
            self.client.get('/' + 'p' * 5000)
        self.assertLess(len(logs.records[0].getMessage()), 600)
