"""Settings of the flagproxy test site.

Environment:
  FLAGPROXY_DJANGO_DATABASE    dj-database-url style URL (default sqlite:///db.sqlite3)
  FLAGPROXY_DJANGO_SECRET_KEY  SECRET_KEY (default: a fixed key for tests)
  FLAGPROXY_DJANGO_DEBUG       "1" turns DEBUG on
  FLAGPROXY_DJANGO_SETTINGS    a JSON object of further settings (WAFFLE_*, LANGUAGES, ...)
                               applied last, so a test can run the site under other settings
"""
import json
import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def parse_database_url(url):
    """Turn a dj-database-url style URL into a Django DATABASES entry.

    sqlite:///relative.db (relative to BASE_DIR), sqlite:////absolute/path.db,
    postgres://user:pass@host:port/name?option=value (also postgresql://).
    """
    if url.startswith('sqlite:///'):
        path = url[len('sqlite:///'):]
        if not path:
            raise ImproperlyConfigured(f'no file name in database URL {url!r}')
        return {'ENGINE': 'django.db.backends.sqlite3', 'NAME': str(BASE_DIR / path)}
    parts = urlsplit(url)
    if parts.scheme in ('postgres', 'postgresql'):
        return {
            'ENGINE': 'django.db.backends.postgresql',
            'NAME': unquote(parts.path.lstrip('/')),
            'USER': unquote(parts.username or ''),
            'PASSWORD': unquote(parts.password or ''),
            'HOST': parts.hostname or '',
            'PORT': str(parts.port or ''),
            'OPTIONS': dict(parse_qsl(parts.query)),
        }
    raise ImproperlyConfigured(f'unsupported database URL {url!r}')


SECRET_KEY = os.environ.get('FLAGPROXY_DJANGO_SECRET_KEY', 'flagproxy-test-secret-key-not-for-production')
DEBUG = os.environ.get('FLAGPROXY_DJANGO_DEBUG') == '1'
ALLOWED_HOSTS = ['*']

# The flagproxy_django package, for its flagproxy_settings command.
sys.path.insert(0, str(BASE_DIR.parent / 'python'))

INSTALLED_APPS = [
    # Django's admin, so that flags changed through its forms leave
    # django_admin_log entries (flagproxy's change audit reads them).
    'django.contrib.admin',
    'django.contrib.messages',
    'django.contrib.contenttypes',
    'django.contrib.auth',
    'django.contrib.sessions',
    'waffle',
    'featureflipper',
    'flags',
    'flagproxy_django',
]

MIDDLEWARE = [
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.middleware.locale.LocaleMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
    'waffle.middleware.WaffleMiddleware',
]

# For the admin's pages only; the test views render no templates.
TEMPLATES = [{
    'BACKEND': 'django.template.backends.django.DjangoTemplates',
    'APP_DIRS': True,
    'OPTIONS': {'context_processors': [
        'django.template.context_processors.request',
        'django.contrib.auth.context_processors.auth',
        'django.contrib.messages.context_processors.messages',
    ]},
}]

# No cache: waffle then reads every flag from the database on every request,
# so the site never answers from rows the tests have since changed.
CACHES = {'default': {'BACKEND': 'django.core.cache.backends.dummy.DummyCache'}}

ROOT_URLCONF = 'testsite.urls'
WSGI_APPLICATION = 'testsite.wsgi.application'

DATABASES = {
    'default': parse_database_url(os.environ.get('FLAGPROXY_DJANGO_DATABASE', 'sqlite:///db.sqlite3')),
}
DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'

LANGUAGE_CODE = 'en-us'
TIME_ZONE = 'UTC'
USE_I18N = True
USE_TZ = True

globals().update(json.loads(os.environ.get('FLAGPROXY_DJANGO_SETTINGS') or '{}'))
