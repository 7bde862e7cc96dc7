"""flagproxy_django.djflags and {% load feature_flags %}: django-flags' API."""
import logging
import warnings

from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpResponse
from django.template import engines
from django.test import RequestFactory, SimpleTestCase, override_settings
from django.views import View

from flagproxy_django import djflags
from flagproxy_django.decisions import Decisions, activate, deactivate
from flagproxy_django.signals import feature_defaulted
from flagproxy_django.templatetags import flagproxy_flags
from flagproxy_django.testing import override_flags
from tests.helpers import inline_meta, payload, without_dropin

ON = inline_meta(payload(flags={'beta': True, 'old': False}))
OFF = inline_meta(payload(flags={'beta': False}))
UNKNOWN = inline_meta(payload(flags={'other': True}))


def decided(**flags):
    """A request carrying decisions, as the middleware leaves it."""
    request = RequestFactory().get('/')
    request.flagproxy = Decisions(flags=flags, state='ok')
    return request


def render(source, context=None, request=None):
    return engines['django'].from_string(source).render(context or {}, request)


class StateTests(SimpleTestCase):
    def setUp(self):
        self.request = decided(beta=True, old=False)

    def states(self, name, request):
        return (djflags.flag_state(name, request=request), djflags.flag_enabled(name, request=request),
                djflags.flag_disabled(name, request=request))

    def test_known_flags(self):
        self.assertEqual(self.states('beta', self.request), (True, True, False))
        self.assertEqual(self.states('old', self.request), (False, False, True))
        for value in self.states('beta', self.request) + self.states('old', self.request):
            self.assertIsInstance(value, bool)

    def test_unknown_flag_is_none_and_disabled(self):
        state, enabled, disabled = self.states('nothing', self.request)
        self.assertIsNone(state)
        self.assertIsNone(enabled)
        self.assertIs(disabled, True)

    def test_names_are_exact(self):
        self.assertIsNone(djflags.flag_state('BETA', request=self.request))
        self.assertIsNone(djflags.flag_state('beta ', request=self.request))

    def test_extra_keyword_arguments_are_accepted(self):
        self.assertIs(djflags.flag_state('beta', request=self.request, user='jane'), True)
        self.assertIs(djflags.flag_disabled('beta', request=self.request, anything=1), False)

    def test_without_a_request_the_current_decisions(self):
        token = activate(Decisions(flags={'beta': False, 'current_only': True}, state='ok'))
        self.addCleanup(deactivate, token)
        self.assertEqual(self.states('current_only', None), (True, True, False))
        self.assertEqual(self.states('current_only', RequestFactory().get('/')), (True, True, False))
        self.assertIs(djflags.flag_enabled('current_only'), True)
        # A request's own decisions win over the current ones.
        self.assertIs(djflags.flag_state('beta', request=self.request), True)
        self.assertIsNone(djflags.flag_state('current_only', request=self.request))

    def test_outside_a_request_every_flag_is_unknown(self):
        self.assertEqual(self.states('beta', None), (None, None, True))

    def test_rejected_header_makes_every_flag_unknown_quietly(self):
        sent = []

        def receiver(**kwargs):
            sent.append(kwargs)

        feature_defaulted.connect(receiver)
        self.addCleanup(feature_defaulted.disconnect, receiver)
        request = RequestFactory().get('/')
        request.flagproxy = Decisions.empty('bad signature')
        with self.assertLogs(level=logging.DEBUG) as logs:
            self.assertEqual(self.states('beta', request), (None, None, True))
            logging.getLogger('marker').debug('marker')
        self.assertEqual(logs.output, ['DEBUG:marker:marker'])  # the middleware has logged already
        self.assertEqual(sent, [])  # feature_defaulted is request.features' signal

    @override_settings(FLAGS_STATE_LOGGING=True)
    def test_flags_state_logging(self):
        with self.assertLogs('flags.sources', logging.DEBUG) as logs:
            djflags.flag_state('beta', request=self.request)
            djflags.flag_disabled('old', request=self.request)
            djflags.flag_state('nothing', request=self.request)  # django-flags logs known flags only
        self.assertEqual(logs.output, ['INFO:flags.sources:Flag beta evaluated True by flagproxy.',
                                       'INFO:flags.sources:Flag old evaluated False by flagproxy.'])

    def test_no_logging_by_default(self):
        with self.assertLogs(level=logging.DEBUG) as logs:
            djflags.flag_state('beta', request=self.request)
            logging.getLogger('marker').debug('marker')
        self.assertEqual(logs.output, ['DEBUG:marker:marker'])

    def test_through_the_middleware(self):
        url = '/flags/report/?name=beta&name=old&name=nothing'
        self.assertEqual(self.client.get(url, **ON).json(),
                         {'beta': [True, True, False], 'old': [False, False, True], 'nothing': [None, None, True]})
        self.assertEqual(self.client.get(url, **OFF).json()['beta'], [False, False, True])

    @without_dropin
    def test_without_a_header(self):
        with self.assertLogs('flagproxy', logging.WARNING):
            got = self.client.get('/flags/report/?name=beta').json()
        self.assertEqual(got, {'beta': [None, None, True]})


class OverrideTests(SimpleTestCase):
    @override_flags(flags={'beta': True, 'forced_off': False})
    def test_forced_without_a_request(self):
        self.assertIs(djflags.flag_state('beta'), True)
        self.assertIs(djflags.flag_enabled('forced_off'), False)
        self.assertIs(djflags.flag_disabled('forced_off'), True)
        self.assertIsNone(djflags.flag_state('nothing'))

    def test_forced_over_a_request_and_a_header(self):
        request = decided(beta=True, other=True)
        with override_flags(flags={'beta': False}):
            self.assertIs(djflags.flag_state('beta', request=request), False)
            self.assertIs(djflags.flag_state('other', request=request), True)
            got = self.client.get('/flags/report/?name=beta&name=old', **ON).json()
            self.assertEqual(got, {'beta': [False, False, True], 'old': [False, False, True]})
        self.assertIs(djflags.flag_state('beta', request=request), True)

    @override_flags(flags={'beta': True})
    def test_decorators_and_tags_see_forced_values(self):
        self.assertEqual(self.client.get('/flags/required/', **OFF).content, b'ok')
        self.assertEqual(render("{% load feature_flags %}{% flag_enabled 'beta' as on %}{{ on }}"), 'True')


class TemplateTagTests(SimpleTestCase):
    def setUp(self):
        self.request = decided(beta=True, old=False)

    def test_feature_flags_is_mapped_to_this_library(self):
        self.assertIs(engines['django'].engine.template_libraries['feature_flags'], flagproxy_flags.register)

    def test_tags(self):
        for library in ('feature_flags', 'flagproxy_flags'):
            source = ('{% load LIB %}{% flag_enabled NAME as on %}{% flag_disabled NAME as off %}{{ on }} {{ off }}'
                      .replace('LIB', library))
            for name, want in (("'beta'", 'True False'), ("'old'", 'False True'), ("'nothing'", 'None True')):
                with self.subTest(library=library, name=name):
                    self.assertEqual(render(source.replace('NAME', name), request=self.request), want)

    def test_in_an_if(self):
        source = ("{% load feature_flags %}{% flag_enabled 'beta' as on %}{% if on %}shown{% else %}hidden{% endif %}"
                  "{% flag_disabled 'nothing' as off %}{% if off %} unknown is off{% endif %}")
        self.assertEqual(render(source, request=self.request), 'shown unknown is off')

    def test_name_from_a_variable(self):
        source = '{% load feature_flags %}{% flag_enabled flag as on %}{{ on }}'
        self.assertEqual(render(source, {'flag': 'beta'}, self.request), 'True')
        self.assertEqual(render(source, {'flag': 'old'}, self.request), 'False')

    def test_request_argument_wins_over_the_contexts(self):
        source = ("{% load feature_flags %}{% flag_enabled 'beta' other as on %}"
                  "{% flag_disabled 'beta' request=other as off %}{{ on }} {{ off }}")
        self.assertEqual(render(source, {'other': decided(beta=False)}, self.request), 'False True')

    def test_keyword_arguments_are_accepted(self):
        source = "{% load feature_flags %}{% flag_enabled 'beta' user='jane' as on %}{{ on }}"
        self.assertEqual(render(source, request=self.request), 'True')

    def test_without_a_request_the_current_decisions(self):
        token = activate(Decisions(flags={'beta': True}, state='ok'))
        self.addCleanup(deactivate, token)
        self.assertEqual(render("{% load feature_flags %}{% flag_enabled 'beta' as on %}{{ on }}"), 'True')

    def test_without_as_the_value_is_printed(self):
        self.assertEqual(render("{% load feature_flags %}{% flag_enabled 'beta' %}", request=self.request), 'True')

    def test_template_file_through_the_middleware(self):
        response = self.client.get('/flags/template/', **ON)
        self.assertEqual(response.content.decode().strip(),
                         'beta: enabled True, disabled False; unknown: enabled None, disabled True')
        response = self.client.get('/flags/template/?name=old', **ON)
        self.assertEqual(response.content.decode().strip(),
                         'old: enabled False, disabled True; unknown: enabled None, disabled True')


class DecoratorTests(SimpleTestCase):
    def assertServed(self, path, meta, body=b'ok'):
        response = self.client.get(path, **meta)
        self.assertEqual((response.status_code, response.content), (200, body))

    def assert404(self, path, meta):
        self.assertEqual(self.client.get(path, **meta).status_code, 404)

    def test_flag_check_true(self):
        self.assertServed('/flags/check/', ON)
        self.assert404('/flags/check/', OFF)
        self.assert404('/flags/check/', UNKNOWN)

    def test_flag_check_false(self):
        self.assert404('/flags/check-off/', ON)
        self.assertServed('/flags/check-off/', OFF)
        self.assertServed('/flags/check-off/', UNKNOWN)  # an unknown flag counts as off

    def test_fallback_gets_the_views_arguments(self):
        self.assertServed('/flags/check-fallback/', ON)
        self.assertServed('/flags/check-fallback/', OFF, b'fallback () {}')
        self.assertServed('/flags/check-fallback/7/', OFF, b"fallback () {'n': 7}")

    def test_flag_required(self):
        self.assertServed('/flags/required/', ON)
        self.assert404('/flags/required/', OFF)
        self.assert404('/flags/required/', UNKNOWN)
        self.assertServed('/flags/required-fallback/', UNKNOWN, b'fallback () {}')

    def test_flag_required_pass_if_set_false(self):
        self.assert404('/flags/required-unset/', ON)
        self.assertServed('/flags/required-unset/', OFF)
        self.assertServed('/flags/required-unset/', UNKNOWN)

    def test_state_is_a_truth_value(self):
        request = decided(beta=True)
        self.assertEqual(djflags.flag_check('beta', 'yes')(lambda r: 'served')(request), 'served')
        with self.assertRaises(Http404):
            djflags.flag_check('beta', 0)(lambda r: 'served')(request)

    def test_extra_arguments_reach_flag_state(self):
        seen = []
        original = djflags.flag_state

        def spy(flag_name, request=None, **kwargs):
            seen.append((flag_name, kwargs))
            return original(flag_name, request=request, **kwargs)

        djflags.flag_state = spy
        self.addCleanup(setattr, djflags, 'flag_state', original)
        djflags.flag_check('beta', True, user='jane')(lambda r: 'served')(decided(beta=True))
        self.assertEqual(seen, [('beta', {'user': 'jane'})])

    def test_wrapped_view_keeps_its_name(self):
        from tests import views
        self.assertEqual(views.flag_checked.__name__, 'ok')
        self.assertEqual(views.flag_required.__doc__, views.ok.__doc__)

    def test_fallback_with_other_arguments_warns(self):
        def view(request, slug):
            return HttpResponse()

        def other(request):
            return HttpResponse()

        with self.assertWarnsMessage(RuntimeWarning, 'Feature flag check fallback for view takes different arguments.'):
            djflags.flag_check('beta', True, fallback=other)(view)
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            djflags.flag_required('beta', fallback_view=lambda request, slug: None)(view)


class ViewTests(SimpleTestCase):
    def test_mixin(self):
        response = self.client.get('/flags/view/', **ON)
        self.assertEqual((response.status_code, response.content), (200, b'beta view'))
        self.assertEqual(self.client.get('/flags/view/', **OFF).status_code, 404)
        self.assertEqual(self.client.get('/flags/view/', **UNKNOWN).status_code, 404)

    def test_state_and_fallback_attributes(self):
        self.assertEqual(self.client.get('/flags/no-view/', **ON).content, b'fallback () {}')
        self.assertEqual(self.client.get('/flags/no-view/', **OFF).content, b'beta view')

    def test_as_view_arguments_win(self):
        self.assertEqual(self.client.get('/flags/view-kwargs/', **ON).content, b'beta view')  # 'other' is unknown
        meta = inline_meta(payload(flags={'other': True}))
        self.assertEqual(self.client.get('/flags/view-kwargs/', **meta).status_code, 404)

    def test_template_view(self):
        response = self.client.get('/flags/template-view/', **ON)
        self.assertEqual(response.status_code, 200)
        self.assertIn('beta: enabled True', response.content.decode())
        self.assertEqual(self.client.get('/flags/template-view/', **OFF).content, b'fallback () {}')

    def test_flag_name_is_required(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "FlaggedViewMixin requires a 'flag_name' argument."):
            type('Unnamed', (djflags.FlaggedViewMixin, View), {}).as_view()

    def test_deprecated_condition(self):
        cls = type('Old', (djflags.FlaggedViewMixin, View), {
            'flag_name': 'beta', 'condition': False, 'get': lambda self, request: HttpResponse('old view')})
        with self.assertWarnsMessage(FutureWarning, 'Please use the state attribute instead.'):
            view = cls.as_view()
        with self.assertRaises(Http404):
            view(decided(beta=True))
        self.assertEqual(view(decided(beta=False)).content, b'old view')
