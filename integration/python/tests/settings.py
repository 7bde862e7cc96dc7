"""Minimal settings for flagproxy_django's tests (see runtests.py)."""
import importlib.util

SECRET_KEY = 'flagproxy-django-tests'
DEBUG = False
ALLOWED_HOSTS = ['testserver']
USE_TZ = True

#: Whether the real django-waffle is importable; it is then installed too,
#: to show that the waffle_tags mapping below wins over its library.
HAVE_WAFFLE = importlib.util.find_spec('waffle') is not None

INSTALLED_APPS = [
    'django.contrib.contenttypes',
    'django.contrib.auth',
    'django.contrib.sessions',
    'django.contrib.messages',
    'django.contrib.admin',
    *(['waffle'] if HAVE_WAFFLE else []),
    'flagproxy_django',
    'flagproxy_django.featureflipper',
    'tests',
]

MIDDLEWARE = [
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
    'flagproxy_django.middleware.FlagproxyMiddleware',
]

if HAVE_WAFFLE:
    # The waffle drop-in: waffle's own functions answer from the header.
    WAFFLE_FLAG_MODEL = 'flagproxy_django.Flag'
    WAFFLE_SWITCH_MODEL = 'flagproxy_django.Switch'
    WAFFLE_SAMPLE_MODEL = 'flagproxy_django.Sample'

ROOT_URLCONF = 'tests.urls'

DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}}
# waffle caches rows and flushes them on commit, which a TestCase never
# does; without a cache no test sees another's rows.
CACHES = {'default': {'BACKEND': 'django.core.cache.backends.dummy.DummyCache'}}
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'

TEMPLATES = [{
    'BACKEND': 'django.template.backends.django.DjangoTemplates',
    'APP_DIRS': True,
    'OPTIONS': {
        'context_processors': [
            'django.template.context_processors.request',
            'django.contrib.auth.context_processors.auth',
            'django.contrib.messages.context_processors.messages',
            'flagproxy_django.context_processors.features',
        ],
        'libraries': {
            'waffle_tags': 'flagproxy_django.templatetags.flagproxy_waffle',
            'feature_flags': 'flagproxy_django.templatetags.flagproxy_flags',
        },
    },
}, {
    # Django's Jinja2 backend with flagproxy's extension (test_jinja.py).
    'BACKEND': 'django.template.backends.jinja2.Jinja2',
    'DIRS': [],
    'APP_DIRS': False,
    'OPTIONS': {'extensions': ['flagproxy_django.jinja.FlagproxyExtension']},
}]
