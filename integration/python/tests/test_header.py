"""flagproxy_django.header: both forms, the signature, every way to be wrong."""
import base64
import gzip
import hashlib
import io
import json
import os
import tracemalloc

from django.test import SimpleTestCase

from flagproxy_django.header import MAX_DECODED_SIZE, HeaderError, MissingHeader, read_flags
from tests.helpers import dumps, inline_meta, large_meta, payload, sign

KEY = b'test-signing-key'
NOW = 1_800_000_000
TESTDATA = os.path.join(os.path.dirname(__file__), 'testdata')


def many_switches(n):
    """n switches with incompressible names, enough for several parts."""
    return {hashlib.sha256(str(i).encode()).hexdigest(): i % 3 == 0 for i in range(n)}


class InlineTests(SimpleTestCase):
    def test_reads_every_member(self):
        obj = payload(flags={'beta': True, 'old': False}, switches={'maint': True}, samples={'s': False},
                      sources={'beta': 'url'}, conflicts={'beta': ['waffle', 'featureflipper']},
                      version='3f2a', state='stale')
        d = read_flags(inline_meta(obj))
        self.assertEqual(d.flags, {'beta': True, 'old': False})
        self.assertEqual(d.switches, {'maint': True})
        self.assertEqual(d.samples, {'s': False})
        self.assertEqual(d.sources, {'beta': 'url'})
        self.assertEqual(d.conflicts, {'beta': ('waffle', 'featureflipper')})
        self.assertEqual((d.version, d.state, d.error), ('3f2a', 'stale', None))

    def test_escaped_names(self):
        obj = payload(flags={'caf\u00e9 <&>': True, '\U0001f600': False})
        d = read_flags(inline_meta(obj))  # json.dumps escapes to ASCII, surrogate pairs included
        self.assertEqual(d.flags, {'caf\u00e9 <&>': True, '\U0001f600': False})

    def test_stale_identity(self):
        self.assertEqual(read_flags(inline_meta(payload(identity='stale'))).identity, 'stale')
        self.assertEqual(read_flags(inline_meta(payload())).identity, '')
        with self.assertRaises(HeaderError):
            read_flags(inline_meta(payload(identity='fresh')))

    def test_conflicts_and_version_are_optional(self):
        obj = payload()
        del obj['version']
        d = read_flags(inline_meta(obj))
        self.assertEqual((d.version, d.conflicts), ('', {}))


class LargeTests(SimpleTestCase):
    def test_round_trip_in_several_parts(self):
        obj = payload(flags={'beta': True}, switches=many_switches(800), sources={'beta': 'session'},
                      version='abc', state='ok')
        meta = large_meta(obj)
        self.assertGreaterEqual(json.loads(meta['HTTP_X_FLAGPROXY_FLAGS'])['parts'], 3)
        d = read_flags(meta)
        self.assertEqual(d.switches, obj['switches'])
        self.assertEqual((d.flags, d.sources, d.version, d.state), ({'beta': True}, {'beta': 'session'}, 'abc', 'ok'))

    def test_signed_large_form_signs_the_pointer(self):
        meta = sign(large_meta(payload(switches=many_switches(300))), KEY, NOW)
        self.assertEqual(len(read_flags(meta, (KEY,), 300, NOW).switches), 300)

    def test_sixteen_parts_are_accepted(self):
        obj = payload(switches=many_switches(400))
        encoded = large_meta(obj, part_size=10 ** 9)['HTTP_X_FLAGPROXY_FLAGS_1']
        meta = large_meta(obj, part_size=-(-len(encoded) // 16))
        self.assertEqual(json.loads(meta['HTTP_X_FLAGPROXY_FLAGS'])['parts'], 16)
        self.assertEqual(len(read_flags(meta).switches), 400)


class GoFixtureTests(SimpleTestCase):
    """Headers recorded from flagproxy's real proxy (see the file's _comment)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with open(os.path.join(TESTDATA, 'go_headers.json'), encoding='utf-8') as f:
            cls.fixture = json.load(f)

    def test_cases(self):
        key = self.fixture['signing_key'].encode('utf-8')
        names = []
        for case in self.fixture['cases']:
            names.append(case['name'])
            with self.subTest(case['name']):
                meta = {'HTTP_' + name.upper().replace('-', '_'): value for name, value in case['headers'].items()}
                d = read_flags(meta, (key,), 300, self.fixture['signed_at'] + 10)
                want = case['expect']
                self.assertEqual(d.flags, want['flags'])
                self.assertEqual(d.switches, want['switches'])
                self.assertEqual(d.samples, want['samples'])
                self.assertEqual(d.sources, want['sources'])
                self.assertEqual((d.version, d.state), (want['version'], want['state']))
        self.assertEqual(names, ['inline', 'large'])
        self.assertIn('X-Flagproxy-Flags-2', self.fixture['cases'][1]['headers'])

    def test_tampered_part_is_rejected(self):
        case = self.fixture['cases'][1]
        meta = {'HTTP_' + name.upper().replace('-', '_'): value for name, value in case['headers'].items()}
        part = meta['HTTP_X_FLAGPROXY_FLAGS_2']
        meta['HTTP_X_FLAGPROXY_FLAGS_2'] = part[:100] + ('A' if part[100] != 'A' else 'B') + part[101:]
        with self.assertRaises(HeaderError):
            read_flags(meta)


DELETE = object()


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def _gzip_b64(data):
    return _b64(gzip.compress(data, mtime=0))


def _pointer_meta(pointer, *parts):
    meta = {'HTTP_X_FLAGPROXY_FLAGS': dumps(pointer)}
    for i, part in enumerate(parts, 1):
        meta[f'HTTP_X_FLAGPROXY_FLAGS_{i}'] = part
    return meta


def _pointer(text, parts=1, **kw):
    p = {'encoding': 'gzip+base64url', 'parts': parts, 'sha256': hashlib.sha256(text).hexdigest(),
         'version': 'v1', 'state': 'ok'}
    p.update(kw)
    return p


class RejectionTests(SimpleTestCase):
    """Each malformed header raises HeaderError naming the problem."""

    def assertRejected(self, meta, fragment, **kwargs):
        with self.assertRaises(HeaderError) as cm:
            read_flags(meta, **kwargs)
        self.assertIn(fragment, str(cm.exception))

    def test_missing(self):
        with self.assertRaises(MissingHeader):
            read_flags({})

    def test_not_json(self):
        self.assertRejected({'HTTP_X_FLAGPROXY_FLAGS': '{"flags":'}, 'not valid JSON')

    def test_json_constants_are_not_json(self):
        self.assertRejected({'HTTP_X_FLAGPROXY_FLAGS': '{"flags":NaN}'}, 'not valid JSON')

    def test_deep_nesting(self):
        self.assertRejected({'HTTP_X_FLAGPROXY_FLAGS': '[' * 100000}, 'not valid JSON')

    def test_two_header_lines_joined_by_the_server(self):
        value = dumps(payload())
        self.assertRejected({'HTTP_X_FLAGPROXY_FLAGS': value + ',' + value}, 'not valid JSON')

    def test_not_an_object(self):
        for value in ('[]', '"x"', '1', 'null', 'true'):
            with self.subTest(value):
                self.assertRejected({'HTTP_X_FLAGPROXY_FLAGS': value}, 'not an object')

    def test_not_ascii(self):
        self.assertRejected({'HTTP_X_FLAGPROXY_FLAGS': dumps(payload()).replace('v1', 'v\u00e9')}, 'not ASCII')

    def test_long_value_is_cut_in_the_message(self):
        with self.assertRaises(HeaderError) as cm:
            read_flags({'HTTP_X_FLAGPROXY_FLAGS': 'x' * 100000})
        self.assertLess(len(str(cm.exception)), 300)
        self.assertIn('100000 characters', str(cm.exception))

    def test_wrong_member_types(self):
        cases = {
            'flags missing': ('flags', DELETE),
            'flags a list': ('flags', []),
            'flag value a string': ('flags', {'a': 'true'}),
            'flag value a number': ('flags', {'a': 1}),
            'switch value null': ('switches', {'a': None}),
            'samples missing': ('samples', DELETE),
            'sources not strings': ('sources', {'a': True}),
            'sources missing': ('sources', DELETE),
            'conflicts not lists': ('conflicts', {'a': 'waffle'}),
            'conflicts of numbers': ('conflicts', {'a': [1]}),
            'version a number': ('version', 3),
            'state unknown': ('state', 'fine'),
            'state missing': ('state', DELETE),
        }
        for label, (member, value) in cases.items():
            with self.subTest(label):
                obj = payload()
                if value is DELETE:
                    del obj[member]
                else:
                    obj[member] = value
                self.assertRejected(inline_meta(obj), f'"{member}"')

    def test_pointer_problems(self):
        text = dumps(payload()).encode('ascii')
        good = _gzip_b64(text)
        cases = {
            'unknown encoding': (_pointer(text, encoding='br'), [good], 'unknown encoding'),
            'zero parts': (_pointer(text, parts=0), [], '1 to 16 parts'),
            'too many parts': (_pointer(text, parts=17), [good] * 17, '1 to 16 parts'),
            'parts not a number': (_pointer(text, parts='1'), [good], '1 to 16 parts'),
            'parts a bool': (_pointer(text, parts=True), [good], '1 to 16 parts'),
            'parts a float': (_pointer(text, parts=1.0), [good], '1 to 16 parts'),
            'bad sha256': (_pointer(text, sha256='xyz'), [good], 'sha256'),
            'missing part': (_pointer(text, parts=2), [good], 'X-Flagproxy-Flags-2 of 2 parts is missing'),
            'empty part': (_pointer(text), [''], 'X-Flagproxy-Flags-1 of 1 parts is missing'),
            'padded base64': (_pointer(text), [good + '='], 'base64url'),
            'standard base64 alphabet': (_pointer(text), [good.replace('-', '+').replace('_', '/') + '+/'],
                                         'base64url'),
            'impossible length': (_pointer(text), [good + 'A' * (5 - len(good) % 4)], 'base64url'),
            'not gzip': (_pointer(text), [_b64(text)], 'not valid gzip'),
            'truncated gzip': (_pointer(text), [_b64(gzip.compress(text)[:-8])], 'not valid gzip'),
            'sha256 mismatch': (_pointer(text + b' '), [good], 'sha256 of the joined parts'),
            'version differs': (_pointer(text, version='other'), [good], 'differs from the pointer'),
            'state differs': (_pointer(text, state='stale'), [good], 'differs from the pointer'),
            'pointer version not a string': (_pointer(text, version=1), [good], 'must be strings'),
        }
        for label, (pointer, parts, fragment) in cases.items():
            with self.subTest(label):
                self.assertRejected(_pointer_meta(pointer, *parts), fragment)

    def test_non_canonical_base64(self):
        text = dumps(payload()).encode('ascii')
        while len(gzip.compress(text, mtime=0)) % 3 == 0:  # want a last character with unused bits
            text += b' '
        good = _gzip_b64(text)
        alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
        last = alphabet.index(good[-1])
        bumped = good[:-1] + alphabet[last + 1]  # only unused low bits change
        self.assertEqual(base64.urlsafe_b64decode(bumped + '=' * (-len(bumped) % 4)),
                         base64.urlsafe_b64decode(good + '=' * (-len(good) % 4)))
        self.assertRejected(_pointer_meta(_pointer(text), bumped), 'not canonical')

    def test_decompressed_size_is_bounded(self):
        text = b' ' * (MAX_DECODED_SIZE + 1)
        self.assertRejected(_pointer_meta(_pointer(text), _gzip_b64(text)), 'larger than')

    def test_gzip_bomb_is_not_decompressed_whole(self):
        size, chunk = 8 * MAX_DECODED_SIZE, b'\0' * (1 << 20)
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode='wb', mtime=0) as f:
            for _ in range(size // len(chunk)):
                f.write(chunk)
        meta = _pointer_meta(_pointer(b''), _b64(buffer.getvalue()))
        tracemalloc.start()
        try:
            self.assertRejected(meta, 'larger than')
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertLess(peak, 4 * MAX_DECODED_SIZE)  # 8 * without the bound

    def test_joined_parts_must_be_an_object(self):
        text = b'[1]'
        self.assertRejected(_pointer_meta(_pointer(text), _gzip_b64(text)), 'joined parts is JSON but not an object')

    def test_joined_parts_must_be_utf8(self):
        text = b'{"flags":"\xff"}'
        self.assertRejected(_pointer_meta(_pointer(text), _gzip_b64(text)), 'not UTF-8')


class SignatureTests(SimpleTestCase):
    meta = inline_meta(payload(flags={'beta': True}))

    def read(self, meta, keys=(KEY,), now=NOW, max_age=300):
        return read_flags(meta, keys, max_age, now)

    def assertRejected(self, meta, fragment, **kwargs):
        with self.assertRaises(HeaderError) as cm:
            self.read(meta, **kwargs)
        self.assertIn(fragment, str(cm.exception))

    def test_good_signature(self):
        self.assertEqual(self.read(sign(self.meta, KEY, NOW)).flags, {'beta': True})

    def test_any_of_several_keys(self):
        self.assertEqual(self.read(sign(self.meta, KEY, NOW), keys=(b'new', KEY)).flags, {'beta': True})

    def test_any_v1_and_unknown_fields(self):
        good = sign(self.meta, KEY, NOW)['HTTP_X_FLAGPROXY_SIGNATURE']
        t, v1 = good.split(',')
        meta = dict(self.meta, HTTP_X_FLAGPROXY_SIGNATURE=f'{t},v1={"0" * 64},{v1},v2=zz')
        self.assertEqual(self.read(meta).flags, {'beta': True})

    def test_no_key_no_check(self):
        self.assertEqual(self.read(dict(self.meta, HTTP_X_FLAGPROXY_SIGNATURE='junk'), keys=()).flags,
                         {'beta': True})

    def test_missing(self):
        self.assertRejected(self.meta, 'X-Flagproxy-Signature is missing')

    def test_wrong_key(self):
        self.assertRejected(sign(self.meta, b'other', NOW), 'does not match')

    def test_other_value(self):
        signed = sign(inline_meta(payload(flags={'beta': False})), KEY, NOW)
        meta = dict(self.meta, HTTP_X_FLAGPROXY_SIGNATURE=signed['HTTP_X_FLAGPROXY_SIGNATURE'])
        self.assertRejected(meta, 'does not match')

    def test_other_time(self):
        signature = sign(self.meta, KEY, NOW)['HTTP_X_FLAGPROXY_SIGNATURE']
        meta = dict(self.meta, HTTP_X_FLAGPROXY_SIGNATURE=signature.replace(f't={NOW}', f't={NOW + 1}'))
        self.assertRejected(meta, 'does not match')

    def test_old(self):
        self.assertRejected(sign(self.meta, KEY, NOW - 301), '301 s old')
        self.assertEqual(self.read(sign(self.meta, KEY, NOW - 300)).flags, {'beta': True})

    def test_future(self):
        self.assertRejected(sign(self.meta, KEY, NOW + 301), '301 s in the future')
        self.assertEqual(self.read(sign(self.meta, KEY, NOW + 300)).flags, {'beta': True})

    def test_max_age(self):
        self.assertRejected(sign(self.meta, KEY, NOW - 11), '11 s old', max_age=10)

    def test_malformed(self):
        mac = '0' * 64
        for value in ('', 'junk', f't={NOW}', f'v1={mac}', f't=abc,v1={mac}', f't=-5,v1={mac}',
                      f't={NOW},v1={mac[:-1]}', f't={NOW},v1={mac.upper().replace("0", "A")}',
                      f't={NOW},t={NOW},v1={mac}', f't={NOW},v1=\u00e9{mac[1:]}', f't= {NOW},v1={mac}'):
            with self.subTest(value):
                with self.assertRaises(HeaderError):
                    self.read(dict(self.meta, HTTP_X_FLAGPROXY_SIGNATURE=value))

    def test_upper_case_hex_is_not_lower_case(self):
        signature = sign(self.meta, KEY, NOW)['HTTP_X_FLAGPROXY_SIGNATURE']
        t, v1 = signature.split(',')
        self.assertRejected(dict(self.meta, HTTP_X_FLAGPROXY_SIGNATURE=f'{t},{v1.upper().replace("V1", "v1")}'),
                            'lower-case hex')
