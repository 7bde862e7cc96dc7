"""The ``flags`` stand-in (integration/python/dropin): django-flags' import paths, from the header."""
import importlib
import os
import sys

from django.template import Context, Engine
from django.test import SimpleTestCase

from flagproxy_django import djflags
from tests.helpers import inline_meta, payload, through_middleware

DROPIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'dropin')


def import_dropin(name):
    sys.path.insert(0, DROPIN)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(DROPIN)


class DropinFlagsTests(SimpleTestCase):
    def test_modules_are_flagproxys(self):
        state = import_dropin('flags.state')
        self.assertIs(state.flag_enabled, djflags.flag_enabled)
        self.assertIs(state.flag_state, djflags.flag_state)
        self.assertIs(import_dropin('flags.decorators').flag_check, djflags.flag_check)
        self.assertIs(import_dropin('flags.views').FlaggedTemplateView, djflags.FlaggedTemplateView)

    def test_template_library_by_its_django_flags_name(self):
        engine = Engine(libraries={'feature_flags': 'flags.templatetags.feature_flags'})
        import_dropin('flags.templatetags.feature_flags')
        template = engine.from_string("{% load feature_flags %}{% flag_enabled 'BETA' as on %}"
                                      "{% flag_disabled 'BETA' as off %}{{ on }} {{ off }}")
        request, _ = through_middleware(inline_meta(payload(flags={'BETA': True})))
        self.assertEqual(template.render(Context({'request': request})), 'True False')

    def test_jinja2_extension(self):
        from jinja2 import Environment
        extension = import_dropin('flags.jinja2tags').flags
        env = Environment(extensions=[extension])
        request, _ = through_middleware(inline_meta(payload(flags={'BETA': True})))
        self.assertEqual(env.from_string('{{ flag_enabled("BETA") }} {{ flag_disabled("X") }}').render(request=request),
                         'True True')
