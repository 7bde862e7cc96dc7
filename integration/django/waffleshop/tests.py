"""The shop's own tests, run by Django's test runner, on waffle's testutils."""
from django.test import TestCase
from waffle.testutils import override_flag, override_switch


class CheckoutTests(TestCase):
    @override_flag('new_checkout', active=True)
    def test_new_checkout(self):
        data = self.client.get('/checkout/').json()
        self.assertEqual((data['view'], data['template']), (True, 'new checkout'))
        self.assertEqual(self.client.get('/beta/').status_code, 200)

    @override_flag('new_checkout', active=False)
    def test_old_checkout(self):
        data = self.client.get('/checkout/').json()
        self.assertEqual((data['view'], data['template']), (False, 'old checkout'))
        self.assertEqual(self.client.get('/beta/').status_code, 404)

    def test_maintenance(self):
        with override_switch('maintenance', active=True):
            self.assertTrue(self.client.get('/checkout/').json()['maintenance'])
        self.assertFalse(self.client.get('/checkout/').json()['maintenance'])
