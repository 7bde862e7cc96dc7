"""flagproxy_django.testing.override_flags."""
import logging

from django.test import RequestFactory, SimpleTestCase

from flagproxy_django import waffle
from flagproxy_django.decisions import current, forcing
from flagproxy_django.testing import override_flags
from tests.helpers import inline_meta, payload, without_dropin


@override_flags(flags={'new_ui': True}, switches={'maintenance': True}, samples={'survey': True})
class DecoratedClassTests(SimpleTestCase):
    def test_forced_in_every_test(self):
        self.assertTrue(waffle.flag_is_active(RequestFactory().get('/'), 'new_ui'))
        self.assertTrue(waffle.switch_is_active('maintenance'))
        self.assertTrue(waffle.sample_is_active('survey'))

    def test_middleware_without_a_header(self):
        with self.assertLogs('flagproxy', logging.DEBUG) as logs:
            got = self.client.get('/report/').json()
        self.assertEqual([r.levelno for r in logs.records], [logging.DEBUG])  # no header is expected here
        self.assertEqual(got['features'], {'new_ui': True})
        self.assertEqual(got['panel'], {'new_ui': [True, 'test']})
        self.assertEqual((got['flag_new_ui'], got['switch_maintenance'], got['sample_survey']), (True, True, True))

    def test_forced_over_a_header(self):
        meta = inline_meta(payload(flags={'new_ui': False, 'other': True}, switches={'maintenance': False},
                                   sources={'new_ui': 'url'}))
        got = self.client.get('/report/', **meta).json()
        self.assertEqual(got['features'], {'new_ui': True, 'other': True})
        self.assertEqual(got['sources'], {'new_ui': 'test'})
        self.assertEqual(got['panel'], {'new_ui': [True, 'test'], 'other': [True, 'site']})
        self.assertTrue(got['switch_maintenance'])

    def test_template(self):
        response = self.client.get('/template/')
        self.assertEqual(response.content.decode().split('\n')[2:4], ['new_ui on', 'maintenance on'])


class UsageTests(SimpleTestCase):
    @without_dropin
    def test_nothing_forced_outside(self):
        self.assertFalse(forcing())
        self.assertFalse(waffle.switch_is_active('maintenance'))

    @override_flags(switches={'maintenance': True})
    def test_function_decorator(self):
        self.assertTrue(waffle.switch_is_active('maintenance'))

    @override_flags(switches={'maintenance': True})
    async def test_async_function_decorator(self):
        self.assertTrue(waffle.switch_is_active('maintenance'))

    def test_context_manager(self):
        with override_flags(flags={'a': True}, samples={'s': False}):
            self.assertEqual(current().flags, {'a': True})
            self.assertEqual(current().samples, {'s': False})
            self.assertTrue(waffle.flag_is_active(None, 'a'))
        self.assertEqual(current().flags, {})
        self.assertFalse(forcing())

    def test_nesting_innermost_wins(self):
        with override_flags(flags={'a': True, 'b': True}):
            with override_flags(flags={'a': False}):
                self.assertEqual(current().flags, {'a': False, 'b': True})
            self.assertEqual(current().flags, {'a': True, 'b': True})

    def test_restored_after_an_exception(self):
        with self.assertRaises(ZeroDivisionError):
            with override_flags(flags={'a': True}):
                1 / 0
        self.assertFalse(forcing())

    @without_dropin
    def test_same_instance_twice(self):
        forced = override_flags(flags={'a': True})
        with forced:
            with forced:
                self.assertTrue(waffle.flag_is_active(None, 'a'))
            self.assertTrue(waffle.flag_is_active(None, 'a'))
        self.assertFalse(waffle.flag_is_active(None, 'a'))

    def test_only_booleans(self):
        for kwargs in ({'flags': {'a': 'true'}}, {'switches': {'a': 1}}, {'samples': {1: True}},
                       {'flags': {'a': None}}):
            with self.subTest(kwargs):
                with self.assertRaises(TypeError):
                    override_flags(**kwargs)

    @without_dropin
    def test_middleware_without_a_header_warns_outside(self):
        with self.assertLogs('flagproxy', logging.DEBUG) as logs:
            self.client.get('/report/')
        self.assertEqual([r.levelno for r in logs.records], [logging.WARNING])
