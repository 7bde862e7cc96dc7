"""The flag functions this app's Python code calls.

This is the only Python module that differs between the two EXAMPLE_FLAGS
modes: putting the site behind flagproxy means changing these imports from
waffle's to flagproxy_django's, which has the same names and signatures but
reads the decisions from flagproxy's header instead of the database.
Templates need no change at all (see TEMPLATES in mysite/settings.py).
"""
from django.conf import settings

if settings.EXAMPLE_FLAGS == 'waffle':
    from waffle import flag_is_active, switch_is_active
    from waffle.decorators import waffle_flag
else:
    from flagproxy_django.waffle import flag_is_active, switch_is_active, waffle_flag

__all__ = ['flag_is_active', 'switch_is_active', 'waffle_flag']
