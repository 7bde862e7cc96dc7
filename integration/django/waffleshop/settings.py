"""A waffle site after the move to flagproxy (integration/waffle_dropin_test.go).

It is the test site plus what the README's "Moving an existing waffle
site" asks for, and nothing else: flagproxy_django's middleware and the
waffle drop-in's three settings. Its views, templates and tests
(waffleshop/) use django-waffle's own imports, unchanged.
FLAGPROXY_DJANGO_SETTINGS (JSON) still applies last.
"""
import json
import os

from testsite.settings import *  # noqa: F401,F403
from testsite.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = INSTALLED_APPS + ['waffleshop']
MIDDLEWARE = MIDDLEWARE + ['flagproxy_django.middleware.FlagproxyMiddleware']
ROOT_URLCONF = 'waffleshop.urls'
WAFFLE_FLAG_MODEL = 'flagproxy_django.Flag'
WAFFLE_SWITCH_MODEL = 'flagproxy_django.Switch'
WAFFLE_SAMPLE_MODEL = 'flagproxy_django.Sample'

globals().update(json.loads(os.environ.get('FLAGPROXY_DJANGO_SETTINGS') or '{}'))
