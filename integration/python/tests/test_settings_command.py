"""The flagproxy_settings management command, and flagproxy's view of its file."""
import io
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

import django
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import SimpleTestCase, override_settings
from django.utils.translation import gettext_lazy

from flagproxy_django.proxy_settings import LIBRARY_SETTINGS
from tests.helpers import without_dropin

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, '..', '..', '..'))
GO_SETTINGS = os.path.join(REPO, 'cmd', 'flagproxy', 'settings.go')

#: The JSON type each kind of flagproxy's knownSettings accepts.
GO_KINDS = {
    'kString': lambda v: isinstance(v, str),
    'kStrings': lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    'kBool': lambda v: isinstance(v, bool),
    'kInt': lambda v: isinstance(v, int) and not isinstance(v, bool),
    'kPairs': lambda v: isinstance(v, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in v),
    'kKeys': lambda v: isinstance(v, str) and v or isinstance(v, list) and v and all(
        isinstance(s, str) and s for s in v),
    'kAny': lambda v: True,
    # django-flags' keys
    'kFlags': lambda v: isinstance(v, dict) and all(
        isinstance(name, str) and isinstance(conditions, list) and all(
            isinstance(c, dict) and set(c) == {'condition', 'value', 'required'}
            and (c['condition'] is None or isinstance(c['condition'], str)) and isinstance(c['required'], bool)
            for c in conditions)
        for name, conditions in v.items()),
    'kError': lambda v: isinstance(v, dict) and set(v) == {'type', 'message'} and all(
        isinstance(s, str) for s in v.values()),
    'kLimit': lambda v: v is None or isinstance(v, int) and not isinstance(v, bool),
}


def run_command(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command('flagproxy_settings', *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def known_settings():
    """flagproxy's knownSettings (cmd/flagproxy/settings.go): key -> kind."""
    with open(GO_SETTINGS, encoding='utf-8') as f:
        source = f.read()
    block = source[source.index('var knownSettings'):]
    block = block[:block.index('\n}\n')]
    return dict(re.findall(r'^\s*"([A-Z0-9_]+)":\s*\{(k\w+),', block, re.M))


class OutputTests(SimpleTestCase):
    def test_json_on_stdout_and_a_note_on_stderr(self):
        out, err = run_command()
        data = json.loads(out)
        self.assertTrue(out.isascii())
        self.assertEqual(data['SECRET_KEY'], settings.SECRET_KEY)
        self.assertEqual(data['DJANGO_VERSION'], django.get_version())
        self.assertEqual(data['SESSION_STORE_QUALNAME'], 'SessionStore')
        self.assertEqual(data['MIDDLEWARE'], list(settings.MIDDLEWARE))
        self.assertEqual(data['SESSION_ENGINE'], 'django.contrib.sessions.backends.db')
        self.assertEqual(data['SESSION_COOKIE_AGE'], 1209600)
        self.assertEqual(data['USE_TZ'], True)
        self.assertEqual(data['WAFFLE_COOKIE'], 'dwf_%s')
        self.assertIsNone(data['WAFFLE_LOG_MISSING_FLAGS'])
        self.assertIs(data['FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING'], False)
        self.assertIs(data['FLAGPROXY_LOCALE_MIDDLEWARE'], False)
        self.assertIs(data['FLAGPROXY_I18N_PATTERNS'], False)
        self.assertIs(data['FLAGPROXY_PREFIX_DEFAULT_LANGUAGE'], False)
        self.assertIn(['de', 'German'], data['LANGUAGES'])
        self.assertIn('SECRET_KEY', err)

    @unittest.skipUnless(os.path.exists(GO_SETTINGS), 'not in the flagproxy source tree')
    def test_every_setting_flagproxy_knows_with_its_type(self):
        known = known_settings()
        self.assertGreater(len(known), 30)
        data = json.loads(run_command()[0])
        optional = set()
        if django.VERSION < (4, 1):
            optional.add('SECRET_KEY_FALLBACKS')
        if django.VERSION >= (4, 0):
            optional.add('DEFAULT_HASHING_ALGORITHM')
        if not settings.HAVE_WAFFLE:
            optional.add('FLAGPROXY_WAFFLE_FLAG_TABLE')
        optional.add('FLAGPROXY_SIGNING_KEY')  # written when the site sets it
        # django-flags' keys written only when the site sets them (or not to Django's default)
        optional.update(('FLAGS', 'FLAGS_ERROR', 'FLAG_SOURCES', 'DATA_UPLOAD_MAX_NUMBER_FIELDS'))
        self.assertEqual(sorted(set(known) - set(data) - optional), [])
        # The keys written only when set, with values of every kind.
        with override_settings(FLAGS={'F': [('boolean', 'True', 1), {'condition': 'user', 'value': None}], 'G': []},
                               FLAG_SOURCES=['flags.sources.DatabaseFlagsSource'], DATA_UPLOAD_MAX_NUMBER_FIELDS=None):
            data.update(json.loads(run_command()[0]))
        with override_settings(FLAGS={'F': [{'value': 'x'}]}):
            data['FLAGS_ERROR'] = json.loads(run_command()[0])['FLAGS_ERROR']
        for key, kind in known.items():
            if key in data:
                with self.subTest(key):
                    self.assertIn(kind, GO_KINDS, f'this test does not know flagproxy\'s {kind} (for {key})')
                    self.assertTrue(GO_KINDS[kind](data[key]), f'{key} = {data[key]!r} is not {kind}')

    @unittest.skipUnless(settings.HAVE_WAFFLE, 'django-waffle is not installed')
    @without_dropin
    def test_waffle_defaults_are_waffles(self):
        import waffle
        from waffle import defaults
        for key, (default, _) in LIBRARY_SETTINGS.items():
            if not key.startswith('WAFFLE_'):
                continue
            name = key[len('WAFFLE_'):]
            with self.subTest(key):
                if name.endswith('_MODEL'):  # the models have their defaults in code, not in defaults.py
                    self.assertEqual(waffle.get_waffle_model(name)._meta.label, default)
                else:
                    self.assertEqual(getattr(defaults, name), default)

    @override_settings(
        WAFFLE_FLAG_DEFAULT=1, WAFFLE_LOG_MISSING_SWITCHES=logging.WARNING, SESSION_COOKIE_AGE=3600.0,
        LANGUAGES=[('en', 'English'), ('de', gettext_lazy('German')), ('xx-nowhere', 'Nowhere')],
        AUTHENTICATION_BACKENDS=('a.B', 'c.D'), FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING=True,
        SESSION_ENGINE='django.contrib.sessions.backends.signed_cookies')
    def test_effective_values_are_converted(self):
        data = json.loads(run_command()[0])
        self.assertIs(data['WAFFLE_FLAG_DEFAULT'], True)
        self.assertEqual(data['WAFFLE_LOG_MISSING_SWITCHES'], logging.WARNING)
        self.assertEqual(data['SESSION_COOKIE_AGE'], 3600)
        self.assertEqual(data['LANGUAGES'], [['en', 'English'], ['de', 'German'], ['xx-nowhere', 'Nowhere']])
        self.assertEqual(data['FLAGPROXY_AVAILABLE_LANGUAGES'], ['en', 'de'])
        self.assertEqual(data['AUTHENTICATION_BACKENDS'], ['a.B', 'c.D'])
        self.assertIs(data['FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING'], True)
        self.assertEqual(data['SESSION_STORE_QUALNAME'], 'SessionStore')

    @unittest.skipUnless(settings.HAVE_WAFFLE, 'django-waffle is not installed')
    @override_settings(FLAGPROXY_SIGNING_KEY=['new', b'old'])
    def test_signing_keys(self):
        data = json.loads(run_command()[0])
        self.assertEqual(data['FLAGPROXY_SIGNING_KEY'], ['new', 'old'])

    @override_settings(FLAGPROXY_SIGNING_KEY=b'\xff\xfe')
    def test_signing_key_that_json_cannot_hold(self):
        out, err = run_command()
        self.assertNotIn('FLAGPROXY_SIGNING_KEY', json.loads(out))
        self.assertIn('FLAGPROXY_SIGNING_KEY', err)

    def test_no_signing_key(self):
        self.assertNotIn('FLAGPROXY_SIGNING_KEY', json.loads(run_command()[0]))

    def test_waffle_flag_table(self):
        self.assertEqual(json.loads(run_command()[0])['FLAGPROXY_WAFFLE_FLAG_TABLE'], 'waffle_flag')

    @override_settings(WAFFLE_FLAG_MODEL='tests.SiteFlag')
    def test_custom_flag_table(self):
        data = json.loads(run_command()[0])
        self.assertEqual(data['WAFFLE_FLAG_MODEL'], 'tests.SiteFlag')
        self.assertEqual(data['FLAGPROXY_WAFFLE_FLAG_TABLE'], 'site_feature_flags')

    def test_flag_model_that_is_not_installed(self):
        for model in ('nope.Flag', 'no_dot'):
            with self.subTest(model), override_settings(WAFFLE_FLAG_MODEL=model):
                out, err = run_command()
                self.assertNotIn('FLAGPROXY_WAFFLE_FLAG_TABLE', json.loads(out))
                self.assertIn(f'WAFFLE_FLAG_MODEL {model!r} is not an installed model', err)

    @override_settings(SECRET_KEY_FALLBACKS=['older'])
    def test_fallbacks_when_the_site_has_them(self):
        self.assertEqual(json.loads(run_command()[0])['SECRET_KEY_FALLBACKS'], ['older'])

    @override_settings(USE_I18N=False)
    def test_no_available_languages_without_i18n(self):
        data = json.loads(run_command()[0])
        self.assertIs(data['USE_I18N'], False)
        self.assertNotIn('FLAGPROXY_AVAILABLE_LANGUAGES', data)

    @override_settings(ROOT_URLCONF='tests.i18n_site', MIDDLEWARE=['tests.i18n_site.SiteLocaleMiddleware'])
    def test_locale_middleware_subclass_and_i18n_patterns(self):
        data = json.loads(run_command()[0])
        self.assertIs(data['FLAGPROXY_LOCALE_MIDDLEWARE'], True)
        self.assertIs(data['FLAGPROXY_I18N_PATTERNS'], True)
        self.assertIs(data['FLAGPROXY_PREFIX_DEFAULT_LANGUAGE'], False)

    @override_settings(MIDDLEWARE=['tests.i18n_site.RulesLocaleMiddleware'])
    def test_locale_middleware_with_its_own_rules(self):
        out, err = run_command()
        self.assertIs(json.loads(out)['FLAGPROXY_LOCALE_MIDDLEWARE'], True)
        self.assertIn('overrides process_request', err)

    @override_settings(MIDDLEWARE=['tests.i18n_site.SiteLocaleMiddleware'])
    def test_locale_middleware_subclass_without_rules_of_its_own(self):
        self.assertNotIn('overrides process_request', run_command()[1])

    @override_settings(MIDDLEWARE=['django.middleware.locale.LocaleMiddleware'])
    def test_locale_middleware(self):
        self.assertIs(json.loads(run_command()[0])['FLAGPROXY_LOCALE_MIDDLEWARE'], True)

    @override_settings(TIME_ZONE=None)
    def test_none_is_left_out_with_a_note(self):
        out, err = run_command()
        self.assertNotIn('TIME_ZONE', json.loads(out))
        self.assertIn('TIME_ZONE is None', err)

    def test_wrong_types_are_errors(self):
        for changed, fragment in (({'SESSION_COOKIE_AGE': 'two weeks'}, 'SESSION_COOKIE_AGE must be an integer'),
                                  ({'SESSION_COOKIE_AGE': True}, 'SESSION_COOKIE_AGE'),
                                  ({'LANGUAGES': [('en',)]}, 'LANGUAGES must be'),
                                  ({'LANGUAGES': 'en'}, 'LANGUAGES must be'),
                                  ({'AUTHENTICATION_BACKENDS': [1]}, 'AUTHENTICATION_BACKENDS must be'),
                                  ({'WAFFLE_LOG_MISSING_FLAGS': [30]}, 'WAFFLE_LOG_MISSING_FLAGS'),
                                  ({'SESSION_ENGINE': 'no.such.engine'}, 'SESSION_ENGINE')):
            with self.subTest(changed), override_settings(**changed):
                with self.assertRaisesMessage(CommandError, fragment):
                    run_command()


class OutputFileTests(SimpleTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, 'flagproxy-settings.json')

    def test_private_file(self):
        with open(self.path, 'w') as f:  # an older, world-readable file is replaced
            f.write('old')
        os.chmod(self.path, 0o644)
        out, err = run_command('-o', self.path)
        self.assertEqual(out, '')
        self.assertIn('SECRET_KEY', err)
        self.assertIn('0600', err)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        with open(self.path, encoding='ascii') as f:
            self.assertEqual(f.read(), run_command()[0])
        self.assertEqual(os.listdir(self.dir), ['flagproxy-settings.json'])

    def test_unwritable_directory(self):
        with self.assertRaisesMessage(CommandError, 'cannot write'):
            run_command('--output', os.path.join(self.dir, 'missing', 'x.json'))


def flagproxy_command():
    """The command that runs flagproxy, or None when there is none."""
    binary = os.environ.get('FLAGPROXY_BINARY')
    if binary:
        return [binary]
    if shutil.which('go') and os.path.exists(os.path.join(REPO, 'go.mod')):
        return ['go', 'run', './cmd/flagproxy']
    return None


@unittest.skipIf(flagproxy_command() is None, 'no flagproxy binary ($FLAGPROXY_BINARY) and no Go toolchain')
class GoAcceptsTheFileTests(SimpleTestCase):
    """flagproxy serve --check-config reads the file without complaint."""

    def check_config(self, path):
        database = os.path.join(os.path.dirname(path), 'empty.sqlite3')
        open(database, 'w').close()
        return subprocess.run(
            flagproxy_command() + ['serve', '--check-config', '--django-settings', path,
                                   '--database', 'sqlite:///' + database],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)

    def test_check_config(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, 'settings.json')
            run_command('-o', path)
            result = self.check_config(path)
            self.assertEqual(result.returncode, 0, result.stdout)
            self.assertIn('configuration ok', result.stdout)
            # The check is real: a wrong type is refused, naming the key.
            with open(path) as f:
                data = json.load(f)
            data['SESSION_COOKIE_AGE'] = 'two weeks'
            with open(path, 'w') as f:
                json.dump(data, f)
            result = self.check_config(path)
            self.assertNotEqual(result.returncode, 0, result.stdout)
            self.assertIn('SESSION_COOKIE_AGE', result.stdout)
