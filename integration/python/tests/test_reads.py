"""X-Flagproxy-Reads: the names the app read, reported on the response."""
import json
import time

from django.test import SimpleTestCase, TestCase, override_settings

from flagproxy_django import reads
from flagproxy_django.header import HeaderError, verify_signature
from flagproxy_django.testing import override_flags
from tests.helpers import inline_meta, payload, sign

FULL = payload(
    flags={'new_ui': True, 'search': False, 'beta': True, 'profile': True},
    switches={'maintenance': True}, samples={'survey': True}, version='snap-1')
NONE = {'flags': [], 'switches': [], 'samples': []}


def reported(response):
    return json.loads(response[reads.READS_HEADER])


class ReportTests(TestCase):  # without a header, waffle's drop-in reads its rows
    def test_names_read_through_every_api(self):
        got = reported(self.client.get('/reads/', **inline_meta(FULL)))
        self.assertEqual(got, {
            'flags': ['new_ui', 'beta', 'profile'], 'switches': ['maintenance'], 'samples': [],
            'missing': dict(NONE, flags=['ghost_flag'])})

    def test_template_reads(self):
        response = self.client.get('/template/', **inline_meta(FULL))
        got = reported(response)
        self.assertEqual(sorted(got['flags']), ['new_ui', 'profile', 'search'])
        self.assertEqual(got['switches'], ['maintenance'])

    def test_wafflejs_reads_every_name(self):
        got = reported(self.client.get('/wafflejs/', **inline_meta(FULL)))
        self.assertEqual(sorted(got['flags']), sorted(FULL['flags']))
        self.assertEqual((got['switches'], got['samples'], got['missing']), (['maintenance'], ['survey'], NONE))

    def test_nothing_read_is_reported_as_nothing(self):
        got = reported(self.client.get('/target/', **inline_meta(FULL)))
        self.assertEqual(got, dict(NONE, missing=NONE))

    def test_unavailable_header_reports_every_name_missing(self):
        with self.assertLogs('flagproxy', 'WARNING'):
            got = reported(self.client.get('/reads/', **inline_meta(payload(state='unavailable'))))
        self.assertEqual(got['flags'], [])
        self.assertEqual(got['missing']['flags'], ['new_ui', 'ghost_flag', 'beta', 'profile'])

    def test_forced_values_count_as_carried(self):
        with override_flags(flags={'ghost_flag': True}):
            got = reported(self.client.get('/reads/', **inline_meta(FULL)))
        self.assertIn('ghost_flag', got['flags'])
        self.assertEqual(got['missing']['flags'], [])

    def test_no_report_without_the_flags_header(self):
        with self.assertLogs('flagproxy', 'INFO'):  # INFO with the waffle drop-in, which answers instead
            response = self.client.get('/reads/')
        self.assertFalse(response.has_header(reads.READS_HEADER))

    def test_no_report_for_a_malformed_header(self):
        with self.assertLogs('flagproxy', 'WARNING'):
            response = self.client.get('/reads/', HTTP_X_FLAGPROXY_FLAGS='{"flags":')
        self.assertFalse(response.has_header(reads.READS_HEADER))

    @override_settings(FLAGPROXY_REPORT_READS=False)
    def test_setting_turns_it_off(self):
        response = self.client.get('/reads/', **inline_meta(FULL))
        self.assertFalse(response.has_header(reads.READS_HEADER))

    def test_unsigned_without_a_key(self):
        response = self.client.get('/reads/', **inline_meta(FULL))
        self.assertFalse(response.has_header(reads.READS_SIGNATURE_HEADER))


@override_settings(FLAGPROXY_SIGNING_KEY=['old-key', 'new-key'])
class SignedTests(SimpleTestCase):
    def get(self, key=b'new-key'):
        return self.client.get('/reads/', **sign(inline_meta(FULL), key, int(time.time())))

    def test_signed_with_every_key(self):
        response = self.get()
        value, signature = response[reads.READS_HEADER], response[reads.READS_SIGNATURE_HEADER]
        self.assertEqual(signature.count(',v1='), 2)
        for key in (b'old-key', b'new-key'):
            verify_signature(value, signature, [key], 300, time.time())
        with self.assertRaises(HeaderError):
            verify_signature(value, signature, [b'other-key'], 300, time.time())
        with self.assertRaises(HeaderError):
            verify_signature(value.replace('beta', 'beto'), signature, [b'new-key'], 300, time.time())

    def test_badly_signed_request_gets_no_report(self):
        with self.assertLogs('flagproxy', 'WARNING'):
            response = self.get(key=b'forged')
        self.assertFalse(response.has_header(reads.READS_HEADER))
        self.assertFalse(response.has_header(reads.READS_SIGNATURE_HEADER))


class BoundTests(SimpleTestCase):
    def test_names_are_recorded_once_in_order(self):
        r = reads.Reads()
        for name in ['b', 'a', 'b']:
            r.add('flags', name, True)
        r.add('switches', 'b', False)
        self.assertEqual(json.loads(reads.encode(r)), {
            'flags': ['b', 'a'], 'switches': [], 'samples': [], 'missing': dict(NONE, switches=['b'])})

    def test_too_many_names(self):
        r = reads.Reads()
        for i in range(reads.MAX_NAMES + 10):
            r.add('flags', f'f{i}', True)
        self.assertTrue(r.truncated)
        self.assertEqual(len(r.names['flags']), reads.MAX_NAMES)

    def test_value_stays_within_its_size(self):
        r = reads.Reads()
        for i in range(reads.MAX_NAMES):
            r.add('samples', f'{i:03d}' + 'x' * 200, False)
        value = reads.encode(r)
        self.assertLessEqual(len(value), reads.MAX_VALUE_SIZE)
        got = json.loads(value)
        self.assertIs(got['truncated'], True)
        self.assertGreater(len(got['missing']['samples']), 10)

    def test_long_and_odd_names(self):
        r = reads.Reads()
        r.add('flags', 'x' * (reads.MAX_NAME_LENGTH + 1), True)
        r.add('flags', None, True)
        r.add('flags', 'caf\u00e9\n"<', True)
        value = reads.encode(r)
        self.assertTrue(value.isascii())
        self.assertNotIn('\n', value)
        self.assertEqual(json.loads(value)['flags'], ['caf\u00e9\n"<'])
        self.assertIs(json.loads(value)['truncated'], True)
