"""flagproxy_settings and django-flags: FLAGS, FLAGS_ERROR, FLAG_SOURCES, the field limit, the username field.

The conversion of FLAGS is checked against the cases of the shared vector file
(spec/vectors/django-flags.json), which were made with the real library: the
file named by $FLAGPROXY_DJANGO_FLAGS_VECTORS, else the shared directory next
to the repository, else the copy in tests/testdata.
"""
import datetime
import decimal
import importlib.util
import json
import os
import unittest
from collections import OrderedDict

from django.core.management import CommandError
from django.test import SimpleTestCase, override_settings

from flagproxy_django.proxy_settings import flags_json, read_flags
from tests.test_settings_command import run_command

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_VECTORS = os.path.normpath(os.path.join(HERE, '..', '..', '..', '..', 'shared', 'spec', 'vectors',
                                               'django-flags.json'))
COPY = os.path.join(HERE, 'testdata', 'django_flags_settings.json')
HAVE_DJANGO_FLAGS = importlib.util.find_spec('flags') is not None

#: What the reprs of the vector file may use.
REPR_NAMESPACE = {
    '__builtins__': {}, 'datetime': datetime, 'date': datetime.date, 'time': datetime.time,
    'timedelta': datetime.timedelta, 'timezone': datetime.timezone, 'OrderedDict': OrderedDict,
    'set': set, 'frozenset': frozenset, 'nan': float('nan'), 'inf': float('inf'), 'Decimal': decimal.Decimal,
}


def vectors_path():
    """The vector file to read: $FLAGPROXY_DJANGO_FLAGS_VECTORS, the shared file, or the copy."""
    return os.environ.get('FLAGPROXY_DJANGO_FLAGS_VECTORS') or (
        SHARED_VECTORS if os.path.exists(SHARED_VECTORS) else COPY)


def setting_cases(path):
    """The cases of ``path`` with a flags_setting_python, one per distinct repr."""
    with open(path, encoding='utf-8') as f:
        cases = json.load(f)['cases']
    found = {}
    for case in cases:
        if 'flags_setting_python' in case:
            want = {k: v for k, v in case['settings'].items() if k in ('FLAGS', 'FLAGS_ERROR')}
            found.setdefault(case['flags_setting_python'], (case['id'], want))
    return found


def canonical(value):
    """JSON text that tells true from 1 and 1 from 1.0."""
    return json.dumps(value, sort_keys=True)


def written(**overrides):
    """The settings file's content, and the notes, with ``overrides``."""
    with override_settings(**overrides):
        out, err = run_command()
    return json.loads(out), err


class FlagsSettingTests(SimpleTestCase):
    def flags(self, setting):
        data, _ = written(FLAGS=setting)
        self.assertNotIn('FLAGS_ERROR', data)
        return data['FLAGS']

    def error(self, setting):
        data, err = written(FLAGS=setting)
        self.assertNotIn('FLAGS', data)
        self.assertIn('cannot read FLAGS', err)
        return data['FLAGS_ERROR']

    def test_not_written_without_the_setting(self):
        data, _ = written()
        self.assertNotIn('FLAGS', data)
        self.assertNotIn('FLAGS_ERROR', data)

    def test_the_forms_of_a_condition(self):
        got = self.flags({
            'DICTS': [{'condition': 'boolean', 'value': 'True'},
                      {'condition': 'path matches', 'value': '^/beta', 'required': True, 'extra': 1}],
            'TUPLES': [('user', 'jane'), ('parameter', 'p', 'False'), ('boolean', 'True', True, 'dropped')],
            'LISTS': [['anonymous', 'no', 0]],
            'OFF': [],
        })
        self.assertEqual(canonical(got), canonical({
            'DICTS': [{'condition': 'boolean', 'value': 'True', 'required': False},
                      {'condition': 'path matches', 'value': '^/beta', 'required': True}],
            'TUPLES': [{'condition': 'user', 'value': 'jane', 'required': False},
                       {'condition': 'parameter', 'value': 'p', 'required': True},  # the string 'False' is true
                       {'condition': 'boolean', 'value': 'True', 'required': False}],
            'LISTS': [{'condition': 'anonymous', 'value': 'no', 'required': False}],
            'OFF': [],
        }))

    def test_values(self):
        aware = datetime.datetime(2026, 1, 15, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
        got = self.flags({'V': [
            ('boolean', True), ('boolean', 0), ('boolean', 1.5), ('boolean', None),
            ('after date', aware), ('before date', datetime.datetime(2026, 1, 15, 12, 0, 0, 5)),
            ('after date', datetime.date(2026, 1, 15)), ('boolean', [0]), ('boolean', ()), ('boolean', float('nan')),
            (5, 'True'), (None, 'True'),
        ]})['V']
        self.assertEqual(canonical([c['value'] for c in got]), canonical([
            True, 0, 1.5, None,
            {'$datetime': '2026-01-15T12:00:00+05:30'}, {'$datetime': '2026-01-15T12:00:00.000005'},
            {'$date': '2026-01-15'}, {'$other': 'list', 'truthy': True}, {'$other': 'tuple', 'truthy': False},
            {'$other': 'float', 'truthy': True}, 'True', 'True',
        ]))
        self.assertEqual([c['condition'] for c in got[-2:]], [None, None])

    def test_removed_single_dict_form_is_read_character_by_character(self):
        self.assertEqual(self.flags({'OLD': {'before date': '2020-01-01', 'abc': 1}}), {'OLD': [
            {'condition': 'b', 'value': 'e', 'required': False}, {'condition': 'a', 'value': 'b', 'required': True}]})

    def test_errors(self):
        for setting, want in (
                ({'F': [{'name': 'boolean', 'value': 'True'}]}, {'type': 'KeyError', 'message': "'condition'"}),
                ({'F': [{'condition': 'boolean'}]}, {'type': 'KeyError', 'message': "'value'"}),
                ({'F': [('boolean',)]}, {'type': 'IndexError', 'message': 'tuple index out of range'}),
                ({'F': 'boolean'}, {'type': 'IndexError', 'message': 'string index out of range'}),
                ({'F': {'b': True}}, {'type': 'IndexError', 'message': 'string index out of range'}),
                ({'F': None}, {'type': 'TypeError', 'message': "'NoneType' object is not iterable"}),
                ({'F': [(['boolean'], 'True')]}, {'type': 'TypeError', 'message': "unhashable type: 'list'"}),
                ([('F', [])], {'type': 'AttributeError', 'message': "'list' object has no attribute 'items'"}),
                (None, {'type': 'AttributeError', 'message': "'NoneType' object has no attribute 'items'"})):
            with self.subTest(setting):
                self.assertEqual(self.error(setting), want)

    def test_a_name_that_is_not_a_string_is_left_out(self):
        data, err = written(FLAGS={'F': [], 5: [('boolean', 'True')]})
        self.assertEqual(data['FLAGS'], {'F': []})
        self.assertIn('flag name 5', err)

    def test_truth_that_cannot_be_tested_is_an_error(self):
        class Stubborn:
            def __bool__(self):
                raise ValueError('no')

        with self.assertRaisesMessage(CommandError, 'FLAGS holds'):
            written(FLAGS={'F': [('boolean', 'True', Stubborn())]})

    def test_the_file_is_ascii_json(self):
        with override_settings(FLAGS={'café': [('path matches', '^/café')]}):
            out, _ = run_command()
        self.assertTrue(out.isascii())
        self.assertEqual(json.loads(out)['FLAGS']['café'][0]['value'], '^/café')


class DjangoFlagsVectorTests(SimpleTestCase):
    """The conversion of every FLAGS setting of the vector file, through the command."""

    def test_vectors(self):
        path = vectors_path()
        cases = setting_cases(path)
        evaluated = 0
        for source, (case_id, want) in cases.items():
            with self.subTest(case_id):
                try:
                    setting = eval(source, dict(REPR_NAMESPACE))  # noqa: S307 (a test vector)
                except Exception as e:
                    self.skipTest(f'{case_id}: the repr cannot be evaluated here ({e!r})')
                data, _ = written(FLAGS=setting)
                got = {k: v for k, v in data.items() if k in ('FLAGS', 'FLAGS_ERROR')}
                self.assertEqual(canonical(got), canonical(want), source)
                evaluated += 1
        self.assertGreaterEqual(evaluated, 200, f'only {evaluated} of {len(cases)} cases of {path} were checked')

    @unittest.skipUnless(os.path.exists(SHARED_VECTORS), 'the shared vector file is not there')
    def test_copy_matches_the_shared_file(self):
        with open(COPY, encoding='utf-8') as f:
            copy = {c['flags_setting_python']: (c['id'], c['settings']) for c in json.load(f)['cases']}
        self.assertEqual(copy, setting_cases(SHARED_VECTORS),
                         'tests/testdata/django_flags_settings.json is out of date: make it again (see its _comment)')

    @unittest.skipUnless(HAVE_DJANGO_FLAGS, 'django-flags is not installed')
    def test_same_reading_as_the_library(self):
        from flags.sources import SettingsFlagsSource
        for source in setting_cases(vectors_path()):
            setting = eval(source, dict(REPR_NAMESPACE))  # noqa: S307
            with self.subTest(source), override_settings(FLAGS=setting):
                try:
                    want = {name: [(c.condition, c.value, c.required) for c in conditions]
                            for name, conditions in SettingsFlagsSource().get_flags().items()}
                except Exception as e:
                    with self.assertRaises(type(e)):
                        read_flags(setting)
                else:
                    self.assertEqual(canonical(flags_json(read_flags(setting))), canonical(flags_json(want)))


class FlagSourcesTests(SimpleTestCase):
    def test_not_written_when_not_set(self):
        self.assertNotIn('FLAG_SOURCES', written()[0])

    def test_the_default_sources(self):
        sources = ('flags.sources.SettingsFlagsSource', 'flags.sources.DatabaseFlagsSource')
        data, err = written(FLAG_SOURCES=sources)
        self.assertEqual(data['FLAG_SOURCES'], list(sources))
        self.assertNotIn('FLAG_SOURCES', err)

    def test_empty_and_reordered(self):
        self.assertEqual(written(FLAG_SOURCES=[])[0]['FLAG_SOURCES'], [])
        sources = ['flags.sources.DatabaseFlagsSource', 'flags.sources.SettingsFlagsSource']
        self.assertEqual(written(FLAG_SOURCES=sources)[0]['FLAG_SOURCES'], sources)

    def test_a_source_flagproxy_cannot_reproduce_is_written_with_a_warning(self):
        data, err = written(FLAG_SOURCES=['flags.sources.SettingsFlagsSource', 'site.sources.CachedSource'])
        self.assertEqual(data['FLAG_SOURCES'], ['flags.sources.SettingsFlagsSource', 'site.sources.CachedSource'])
        self.assertIn('FLAG_SOURCES names site.sources.CachedSource', err)
        self.assertNotIn('names flags.sources.SettingsFlagsSource', err)

    def test_wrong_types(self):
        for value in ('flags.sources.SettingsFlagsSource', None, [1]):
            with self.subTest(value), self.assertRaisesMessage(CommandError, 'FLAG_SOURCES must be'):
                written(FLAG_SOURCES=value)


class FieldLimitTests(SimpleTestCase):
    def test_default_is_not_written(self):
        self.assertNotIn('DATA_UPLOAD_MAX_NUMBER_FIELDS', written()[0])
        self.assertNotIn('DATA_UPLOAD_MAX_NUMBER_FIELDS', written(DATA_UPLOAD_MAX_NUMBER_FIELDS=1000)[0])

    def test_other_limits(self):
        self.assertEqual(written(DATA_UPLOAD_MAX_NUMBER_FIELDS=2)[0]['DATA_UPLOAD_MAX_NUMBER_FIELDS'], 2)
        data = written(DATA_UPLOAD_MAX_NUMBER_FIELDS=None)[0]
        self.assertIn('DATA_UPLOAD_MAX_NUMBER_FIELDS', data)
        self.assertIsNone(data['DATA_UPLOAD_MAX_NUMBER_FIELDS'])

    def test_wrong_type(self):
        with self.assertRaisesMessage(CommandError, 'DATA_UPLOAD_MAX_NUMBER_FIELDS must be an integer'):
            written(DATA_UPLOAD_MAX_NUMBER_FIELDS='many')


class UsernameFieldTests(SimpleTestCase):
    def test_default_user_model(self):
        self.assertEqual(written()[0]['FLAGPROXY_USERNAME_FIELD'], 'username')

    def test_custom_user_model(self):
        self.assertEqual(written(AUTH_USER_MODEL='tests.Member')[0]['FLAGPROXY_USERNAME_FIELD'], 'email')

    def test_user_model_that_is_not_installed(self):
        data, err = written(AUTH_USER_MODEL='nope.User')
        self.assertNotIn('FLAGPROXY_USERNAME_FIELD', data)
        self.assertIn('FLAGPROXY_USERNAME_FIELD is left out', err)

    def test_time_settings_the_dates_need_are_written(self):
        data = written(USE_TZ=False, TIME_ZONE='Asia/Kolkata')[0]
        self.assertEqual((data['USE_TZ'], data['TIME_ZONE']), (False, 'Asia/Kolkata'))
        self.assertIn('DJANGO_VERSION', data)
