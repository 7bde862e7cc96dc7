"""Template tags ({% feature %}, waffle's tags) and the context processor."""
import json
import re
import unittest

from django.conf import settings
from django.template import TemplateSyntaxError, engines
from django.template.backends.django import get_installed_libraries
from django.test import RequestFactory, SimpleTestCase, override_settings

from flagproxy_django.context_processors import features
from flagproxy_django.decisions import Decisions, FeatureDict, activate, deactivate
from flagproxy_django.signals import feature_defaulted
from flagproxy_django.templatetags import flagproxy_waffle
from tests.helpers import inline_meta, payload

HEADER = payload(flags={'search': True, 'profile': False, 'new_ui': True, '"search"': False},
                 switches={'maintenance': True, 'signup': False}, samples={'survey': True, 'poll': False})


def render(source, context=None, request=None):
    return engines['django'].from_string(source).render(context or {}, request)


def decided(**kwargs):
    """A request carrying decisions, as the middleware leaves it."""
    request = RequestFactory().get('/')
    request.flagproxy = Decisions(state='ok', **kwargs)
    request.features = FeatureDict(request.flagproxy.flags)
    return request


class FeatureTagTests(SimpleTestCase):
    def setUp(self):
        self.request = decided(flags=HEADER['flags'])

    def test_enabled_and_disabled(self):
        source = '{% load feature_tag %}{% feature NAME %}on{% disabled %}off{% endfeature %}'
        for name, want in (('search', 'on'), ('profile', 'off'), ('unknown', 'off')):
            with self.subTest(name):
                self.assertEqual(render(source.replace('NAME', name), request=self.request), want)

    def test_without_disabled_block(self):
        source = '{% load feature_tag %}[{% feature NAME %}on{% endfeature %}]'
        self.assertEqual(render(source.replace('NAME', 'search'), request=self.request), '[on]')
        self.assertEqual(render(source.replace('NAME', 'profile'), request=self.request), '[]')

    def test_name_is_the_literal_token(self):
        # With quotes the name includes them, as in feature-flipper; a
        # context variable of the same name is not resolved.
        source = '{% load feature_tag %}{% feature "search" %}on{% disabled %}off{% endfeature %}'
        self.assertEqual(render(source, request=self.request), 'off')
        source = '{% load feature_tag %}{% feature name %}on{% disabled %}off{% endfeature %}'
        self.assertEqual(render(source, {'name': 'search'}, self.request), 'off')

    def test_needs_exactly_one_argument(self):
        for tag in ('{% feature %}', '{% feature a b %}'):
            with self.subTest(tag):
                with self.assertRaisesMessage(TemplateSyntaxError, "'feature' tag requires a single argument"):
                    render('{% load feature_tag %}' + tag + '{% endfeature %}')

    def test_unknown_name_sends_the_signal(self):
        seen = []

        def receiver(sender, feature, **kwargs):
            seen.append(feature)

        feature_defaulted.connect(receiver)
        self.addCleanup(feature_defaulted.disconnect, receiver)
        render('{% load feature_tag %}{% feature unknown %}on{% endfeature %}', request=self.request)
        self.assertEqual(seen, ['unknown'])

    def test_uses_the_features_variable(self):
        source = '{% load feature_tag %}{% feature search %}on{% disabled %}off{% endfeature %}'
        self.assertEqual(render(source, {'features': FeatureDict(search=False)}, self.request), 'off')

    def test_without_a_request_uses_the_current_decisions(self):
        token = activate(Decisions(flags={'search': True}, state='ok'))
        self.addCleanup(deactivate, token)
        source = '{% load feature_tag %}{% feature search %}on{% disabled %}off{% endfeature %}'
        self.assertEqual(render(source), 'on')


class WaffleTagTests(SimpleTestCase):
    def setUp(self):
        self.request = decided(flags=HEADER['flags'])
        token = activate(Decisions(switches=HEADER['switches'], samples=HEADER['samples'], state='ok'))
        self.addCleanup(deactivate, token)

    def test_tags_with_else(self):
        for kind, on, off in (('flag', 'search', 'profile'), ('switch', 'maintenance', 'signup'),
                              ('sample', 'survey', 'poll')):
            source = '{% load waffle_tags %}{% KIND NAME %}on{% else %}off{% endKIND %}'.replace('KIND', kind)
            with self.subTest(kind):
                self.assertEqual(render(source.replace('NAME', on), request=self.request), 'on')
                self.assertEqual(render(source.replace('NAME', off), request=self.request), 'off')
                self.assertEqual(render(source.replace('NAME', 'unknown'), request=self.request), 'off')

    def test_tags_without_else(self):
        for kind, on, off in (('flag', 'search', 'profile'), ('switch', 'maintenance', 'signup'),
                              ('sample', 'survey', 'poll')):
            source = '{% load waffle_tags %}[{% KIND NAME %}on{% endKIND %}]'.replace('KIND', kind)
            with self.subTest(kind):
                self.assertEqual(render(source.replace('NAME', on), request=self.request), '[on]')
                self.assertEqual(render(source.replace('NAME', off), request=self.request), '[]')

    @override_settings(WAFFLE_FLAG_DEFAULT=True, WAFFLE_SWITCH_DEFAULT=True, WAFFLE_SAMPLE_DEFAULT=True)
    def test_unknown_names_take_the_waffle_defaults(self):
        for kind in ('flag', 'switch', 'sample'):
            source = '{% load waffle_tags %}{% KIND unknown %}on{% else %}off{% endKIND %}'.replace('KIND', kind)
            with self.subTest(kind):
                self.assertEqual(render(source, request=self.request), 'on')

    def test_variable_argument(self):
        source = '{% load waffle_tags %}{% flag name %}on{% else %}off{% endflag %}'
        self.assertEqual(render(source, {'name': 'search'}, self.request), 'on')
        self.assertEqual(render(source, {'name': 'profile'}, self.request), 'off')
        source = '{% load waffle_tags %}{% switch s.name %}on{% else %}off{% endswitch %}'
        self.assertEqual(render(source, {'s': {'name': 'maintenance'}}, self.request), 'on')

    def test_literal_token_when_the_variable_is_empty_or_missing(self):
        self.request = decided(flags={'name': True, 'search': True})
        source = '{% load waffle_tags %}{% flag name %}on{% else %}off{% endflag %}'
        self.assertEqual(render(source, {}, self.request), 'on')  # no such variable
        self.assertEqual(render(source, {'name': ''}, self.request), 'on')  # empty value
        self.assertEqual(render(source, {'name': None}, self.request), 'on')
        self.assertEqual(render(source, {'name': 'profile'}, self.request), 'off')

    def test_quoted_literal(self):
        source = '{% load waffle_tags %}{% flag "search" %}on{% else %}off{% endflag %}'
        self.assertEqual(render(source, request=self.request), 'on')

    def test_flag_uses_the_contexts_request(self):
        source = '{% load waffle_tags %}{% flag search %}on{% else %}off{% endflag %}'
        self.assertEqual(render(source, request=decided(flags={'search': False})), 'off')
        self.assertEqual(render(source, request=decided(flags={'search': True})), 'on')

    def test_needs_an_argument(self):
        with self.assertRaisesMessage(TemplateSyntaxError, "'flag' tag requires an argument"):
            render('{% load waffle_tags %}{% flag %}{% endflag %}')

    def test_own_library_name(self):
        source = '{% load flagproxy_waffle %}{% switch maintenance %}on{% else %}off{% endswitch %}'
        self.assertEqual(render(source), 'on')


class WaffleTagsMappingTests(SimpleTestCase):
    def test_waffle_tags_is_this_library(self):
        engine = engines['django'].engine
        self.assertIs(engine.template_libraries['waffle_tags'], flagproxy_waffle.register)

    @unittest.skipUnless(settings.HAVE_WAFFLE, 'django-waffle is not installed')
    def test_mapping_wins_over_the_installed_waffle_app(self):
        self.assertIn('waffle', settings.INSTALLED_APPS)
        self.assertEqual(get_installed_libraries()['waffle_tags'], 'waffle.templatetags.waffle_tags')
        # waffle's own tag would query waffle's tables, which do not exist here.
        token = activate(Decisions(switches={'maintenance': True}, state='ok'))
        self.addCleanup(deactivate, token)
        self.assertEqual(render('{% load waffle_tags %}{% switch maintenance %}on{% endswitch %}'), 'on')


class WaffleJSTests(SimpleTestCase):
    def data(self, output):
        found = dict(re.findall(r'(FLAGS|SWITCHES|SAMPLES) = (\{.*?\})', output))
        return {name: json.loads(value) for name, value in found.items()}

    def test_values(self):
        request = decided(flags={'search': True, 'profile': False}, switches={'maintenance': True},
                          samples={'poll': False})
        output = render('{% load waffle_tags %}{% wafflejs %}', request=request)
        self.assertEqual(self.data(output), {'FLAGS': {'profile': False, 'search': True},
                                             'SWITCHES': {'maintenance': True}, 'SAMPLES': {'poll': False}})
        self.assertIn('window.waffle = {', output)
        for function in ('flag_is_active', 'switch_is_active', 'sample_is_active'):
            self.assertIn(f'"{function}": function', output)
        self.assertEqual(output.count('lookup(FLAGS, flag_name, false)'), 1)

    @override_settings(WAFFLE_FLAG_DEFAULT=True, WAFFLE_SAMPLE_DEFAULT=True)
    def test_defaults(self):
        output = render('{% load waffle_tags %}{% wafflejs %}', request=decided())
        self.assertIn('lookup(FLAGS, flag_name, true)', output)
        self.assertIn('lookup(SWITCHES, switch_name, false)', output)
        self.assertIn('lookup(SAMPLES, sample_name, true)', output)

    def test_names_cannot_end_the_script(self):
        name = '</script><script>alert(1)</script>\u2028'
        output = render('{% load waffle_tags %}{% wafflejs %}', request=decided(flags={name: True}))
        self.assertNotIn('</script>', output)
        self.assertNotIn('\u2028', output)
        self.assertEqual(self.data(output)['FLAGS'], {name: True})


class ContextProcessorTests(SimpleTestCase):
    def test_page(self):
        response = self.client.get('/template/', **inline_meta(HEADER))
        self.assertIs(response.context['features'], response.wsgi_request.features)
        self.assertEqual(response.content.decode().split('\n')[:4],
                         ['search on', 'profile off', 'new_ui on', 'maintenance on'])

    def test_page_with_everything_off(self):
        response = self.client.get('/template/', **inline_meta(payload()))
        self.assertEqual(response.content.decode().split('\n')[:4],
                         ['search off', 'profile off', 'new_ui off', 'maintenance off'])

    def test_request_without_the_middleware(self):
        token = activate(Decisions(flags={'search': True}, state='ok'))
        self.addCleanup(deactivate, token)
        found = features(RequestFactory().get('/'))['features']
        self.assertIsInstance(found, FeatureDict)
        self.assertEqual(found, {'search': True})
        self.assertIs(found['other'], False)
