"""flagproxy_django.waffle: functions, defaults, decorators, mixins."""
import logging

from django.http import Http404
from django.test import RequestFactory, SimpleTestCase, override_settings

from flagproxy_django import waffle
from flagproxy_django.decisions import Decisions, activate, deactivate
from tests.helpers import inline_meta, payload

HEADER = payload(flags={'new_ui': True, 'old_ui': False}, switches={'maintenance': True, 'signup': False},
                 samples={'survey': True, 'poll': False})


class FunctionTests(SimpleTestCase):
    def setUp(self):
        self.request = RequestFactory().get('/')
        self.request.flagproxy = Decisions(flags=HEADER['flags'], state='ok')
        token = activate(Decisions(switches=HEADER['switches'], samples=HEADER['samples'], state='ok'))
        self.addCleanup(deactivate, token)

    def test_values_from_the_header(self):
        self.assertIs(waffle.flag_is_active(self.request, 'new_ui'), True)
        self.assertIs(waffle.flag_is_active(self.request, 'old_ui'), False)
        self.assertIs(waffle.flag_is_active(self.request, 'new_ui', read_only=True), True)
        self.assertIs(waffle.switch_is_active('maintenance'), True)
        self.assertIs(waffle.switch_is_active('signup'), False)
        self.assertIs(waffle.sample_is_active('survey'), True)
        self.assertIs(waffle.sample_is_active('poll'), False)

    def test_unknown_names_take_false_by_default(self):
        self.assertIs(waffle.flag_is_active(self.request, 'nothing'), False)
        self.assertIs(waffle.switch_is_active('nothing'), False)
        self.assertIs(waffle.sample_is_active('nothing'), False)

    def test_unknown_names_take_the_waffle_settings(self):
        for name, check in (('WAFFLE_FLAG_DEFAULT', lambda: waffle.flag_is_active(self.request, 'nothing')),
                            ('WAFFLE_SWITCH_DEFAULT', lambda: waffle.switch_is_active('nothing')),
                            ('WAFFLE_SAMPLE_DEFAULT', lambda: waffle.sample_is_active('nothing'))):
            with self.subTest(name):
                with override_settings(**{name: True}):
                    self.assertIs(check(), True)
                with override_settings(**{name: False}):
                    self.assertIs(check(), False)

    @override_settings(WAFFLE_FLAG_DEFAULT=True, WAFFLE_SWITCH_DEFAULT=True, WAFFLE_SAMPLE_DEFAULT=True)
    def test_defaults_do_not_override_known_names(self):
        self.assertIs(waffle.flag_is_active(self.request, 'old_ui'), False)
        self.assertIs(waffle.switch_is_active('signup'), False)
        self.assertIs(waffle.sample_is_active('poll'), False)

    def test_request_without_decisions_uses_the_current_ones(self):
        token = activate(Decisions(flags={'new_ui': True}, state='ok'))
        self.addCleanup(deactivate, token)
        self.assertIs(waffle.flag_is_active(RequestFactory().get('/'), 'new_ui'), True)
        self.assertIs(waffle.flag_is_active(None, 'new_ui'), True)

    @override_settings(WAFFLE_LOG_MISSING_FLAGS=logging.WARNING, WAFFLE_LOG_MISSING_SWITCHES=logging.INFO,
                       WAFFLE_LOG_MISSING_SAMPLES=logging.ERROR)
    def test_log_missing(self):
        with self.assertLogs('waffle', logging.DEBUG) as logs:
            waffle.flag_is_active(self.request, 'nothing')
            waffle.switch_is_active('no_switch')
            waffle.sample_is_active('no_sample')
            waffle.flag_is_active(self.request, 'new_ui')
        self.assertEqual(logs.output, ['WARNING:waffle:Flag nothing not found',
                                       'INFO:waffle:Switch no_switch not found',
                                       'ERROR:waffle:Sample no_sample not found'])

    @override_settings(WAFFLE_LOG_MISSING_FLAGS=logging.WARNING)
    def test_log_missing_is_quiet_without_a_header(self):
        self.request.flagproxy = Decisions.empty('no header')
        with self.assertLogs('waffle', logging.DEBUG) as logs:
            waffle.flag_is_active(self.request, 'nothing')
            logging.getLogger('waffle').debug('marker')
        self.assertEqual(logs.output, ['DEBUG:waffle:marker'])


class DecoratorTests(SimpleTestCase):
    on = inline_meta(HEADER)
    off = inline_meta(payload(flags={'new_ui': False}, switches={'maintenance': False}))

    def get(self, path, meta):
        return self.client.get(path, **meta)

    def assertOK(self, response):
        self.assertEqual((response.status_code, response.content), (200, b'ok'))

    def test_flag(self):
        self.assertOK(self.get('/flagged/', self.on))
        self.assertEqual(self.get('/flagged/', self.off).status_code, 404)

    def test_negated_flag(self):
        self.assertEqual(self.get('/not-flagged/', self.on).status_code, 404)
        self.assertOK(self.get('/not-flagged/', self.off))

    def test_flag_redirect(self):
        self.assertOK(self.get('/flagged-redirect/', self.on))
        self.assertRedirects(self.get('/flagged-redirect/', self.off), '/target/', fetch_redirect_response=False)

    def test_flag_redirect_reverses_with_the_views_arguments(self):
        self.assertRedirects(self.get('/flagged/5/', self.off), '/target/5/', fetch_redirect_response=False)

    def test_flag_redirect_that_cannot_be_reversed_is_404(self):
        self.assertEqual(self.get('/flagged-bad-redirect/', self.off).status_code, 404)

    def test_switch(self):
        self.assertOK(self.get('/switched/', self.on))
        self.assertEqual(self.get('/switched/', self.off).status_code, 404)

    def test_negated_switch(self):
        self.assertEqual(self.get('/not-switched/', self.on).status_code, 404)
        self.assertOK(self.get('/not-switched/', self.off))

    def test_switch_redirect_to_a_view(self):
        self.assertOK(self.get('/switched-redirect/', self.on))
        self.assertRedirects(self.get('/switched-redirect/', self.off), '/target/', fetch_redirect_response=False)

    def test_wrapped_view_keeps_its_name(self):
        from tests import views
        self.assertEqual(views.flagged.__name__, 'ok')
        self.assertEqual(views.flagged.__doc__, views.ok.__doc__)


class MixinTests(SimpleTestCase):
    on = inline_meta(HEADER)
    off = inline_meta(payload(flags={'new_ui': False}, switches={'maintenance': False}, samples={'survey': False}))

    def test_mixins(self):
        for path, body in (('/flag-view/', b'flag view'), ('/switch-view/', b'switch view'),
                           ('/sample-view/', b'sample view')):
            with self.subTest(path):
                response = self.client.get(path, **self.on)
                self.assertEqual((response.status_code, response.content), (200, body))
                self.assertEqual(self.client.get(path, **self.off).status_code, 404)

    def test_negated_flag_mixin(self):
        self.assertEqual(self.client.get('/not-flag-view/', **self.on).status_code, 404)
        self.assertEqual(self.client.get('/not-flag-view/', **self.off).content, b'not flag view')

    def test_invalid_waffle_raises_404(self):
        with self.assertRaisesMessage(Http404, 'Inactive waffle'):
            waffle.BaseWaffleMixin().invalid_waffle()
