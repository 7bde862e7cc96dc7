"""The package itself: system checks, Python 3.8 syntax, no dependency but Django."""
import ast
import os
import sys
import unittest

from django.test import SimpleTestCase, override_settings

from flagproxy_django.checks import check_settings

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'flagproxy_django')


def sources():
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(directory, name)
                with open(path, encoding='utf-8') as f:
                    yield os.path.relpath(path, PACKAGE), f.read()


class CheckTests(SimpleTestCase):
    def ids(self):
        return [message.id for message in check_settings(None)]

    def test_good_configuration(self):
        self.assertEqual(self.ids(), [])
        with override_settings(FLAGPROXY_SIGNING_KEY=['a', b'b'], FLAGPROXY_SIGNATURE_MAX_AGE=1.5):
            self.assertEqual(self.ids(), [])

    def test_bad_signing_key(self):
        for value in ('', b'', [], ['ok', ''], 7, ['ok', 7]):
            with self.subTest(value), override_settings(FLAGPROXY_SIGNING_KEY=value):
                self.assertEqual(self.ids(), ['flagproxy.E001'])

    def test_bad_max_age(self):
        for value in (0, -1, '300', True, None, float('nan')):
            with self.subTest(value), override_settings(FLAGPROXY_SIGNATURE_MAX_AGE=value):
                self.assertEqual(self.ids(), ['flagproxy.E002'])

    def test_middleware_missing(self):
        with override_settings(MIDDLEWARE=['django.middleware.common.CommonMiddleware', 'no.such.Middleware']):
            self.assertEqual(self.ids(), ['flagproxy.W001'])


WAFFLE_DROPIN_SOURCES = {'waffle_models.py', 'waffle.py', 'shadow.py', 'admin.py'}


class SourceTests(SimpleTestCase):
    def test_python_3_8_syntax(self):
        for name, text in sources():
            with self.subTest(name):
                ast.parse(text, name, feature_version=(3, 8))

    @unittest.skipIf(sys.version_info < (3, 10), 'sys.stdlib_module_names needs Python 3.10')
    def test_imports_only_the_standard_library_and_django(self):
        # django-waffle only where the waffle drop-in needs it: waffle_models
        # is imported only when waffle is installed, the others import it
        # inside the functions that run only then.
        allowed = set(sys.stdlib_module_names) | {'django', 'flagproxy_django'}
        # jinja.py is loaded only by a site that renders with Jinja2 (which Django's backend needs).
        optional = {'jinja.py': {'jinja2', 'markupsafe'}}
        for name, text in sources():
            allowed_here = allowed | ({'waffle'} if name in WAFFLE_DROPIN_SOURCES else set())
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    with self.subTest(name=name, module=module):
                        self.assertIn(module.split('.')[0], allowed_here | optional.get(name, set()))
