"""The Jinja2 extension, rendered by Django's Jinja2 backend."""
import json
import re

from django.template import engines
from django.test import SimpleTestCase, TestCase, override_settings

from tests.helpers import inline_meta, payload, through_middleware

HEADER = payload(flags={'new_ui': True, 'old_ui': False, 'BETA': True, 'search': True},
                 switches={'maintenance': True, 'signup': False}, samples={'survey': True})


def render(source, meta, context=None):
    """``source`` rendered during a request with ``meta``, inside FlagproxyMiddleware as a view would."""
    template = engines['jinja2'].from_string(source)
    return through_middleware(meta, lambda request: template.render(context or {}, request))[1]


class JinjaExtensionTests(SimpleTestCase):
    def setUp(self):
        self.meta = inline_meta(HEADER)

    def test_waffle_globals(self):
        source = ('{{ waffle.flag("new_ui") }} {{ waffle.flag("old_ui") }} {{ waffle.flag("unknown") }} '
                  '{{ waffle.switch("maintenance") }} {{ waffle.switch("signup") }} {{ waffle.sample("survey") }}')
        self.assertEqual(render(source, self.meta), 'True False False True False True')

    @override_settings(WAFFLE_FLAG_DEFAULT=True)
    def test_waffle_default_for_unknown_names(self):
        self.assertEqual(render('{{ waffle.flag("unknown") }}', self.meta), 'True')

    def test_wafflejs_is_not_escaped(self):
        script = render('{{ waffle.wafflejs() }}', self.meta)
        flags = json.loads(re.search(r'var FLAGS = (\{.*?\})', script).group(1))
        self.assertEqual(flags, HEADER['flags'])
        self.assertNotIn('&#34;', script)

    def test_django_flags_globals(self):
        source = ('{{ flag_enabled("BETA") }} {{ flag_enabled("old_ui") }} {{ flag_enabled("nope") }} '
                  '{{ flag_disabled("BETA") }} {{ flag_disabled("nope") }}')
        self.assertEqual(render(source, self.meta), 'True False None False True')

    def test_flags_with_an_explicit_request(self):
        other, _ = through_middleware(inline_meta(payload(flags={'BETA': False})))
        self.assertEqual(render('{{ flag_enabled("BETA", req) }}', self.meta, {'req': other}), 'False')

    def test_feature(self):
        source = '{% if feature("search") %}on{% else %}off{% endif %}/{{ feature("old_ui") }}/{{ feature("x") }}'
        self.assertEqual(render(source, self.meta), 'on/False/False')


    def test_waffle_extension_alias(self):
        from flagproxy_django.jinja import FlagproxyExtension, WaffleExtension
        self.assertIs(WaffleExtension, FlagproxyExtension)


class JinjaWithoutHeaderTests(TestCase):
    """No header reached the code: waffle's names are answered by waffle
    from its rows (there are none here), the others take their defaults."""

    def test_without_a_header_every_name_is_default(self):
        source = '{{ waffle.flag("new_ui") }} {{ flag_enabled("BETA") }} {{ feature("search") }}'
        self.assertEqual(render(source, {}), 'False None False')
