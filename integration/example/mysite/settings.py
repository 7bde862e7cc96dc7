"""Settings of the flagproxy example site.

Everything that changes between your machine, the tests and a container
comes from the environment:

  EXAMPLE_DATABASE_URL   the database, as a dj-database-url style URL
                         (default sqlite:///db.sqlite3, relative to the
                         directory you start Django from)
  EXAMPLE_FLAGS          who decides the flags (default "flagproxy"):
                           flagproxy  read flagproxy's X-Flagproxy-Flags header
                                      (flagproxy_django's middleware and tags)
                           waffle     evaluate them in this process, as the
                                      site did before flagproxy (waffle's
                                      middleware and tags, plus the
                                      feature-flipper code in pages/inprocess.py)
  EXAMPLE_SECRET_KEY     SECRET_KEY (default: an insecure key for local use)
  EXAMPLE_DEBUG          "1" (default) or "0"
  EXAMPLE_ALLOWED_HOSTS  comma-separated ALLOWED_HOSTS
                         (default localhost,127.0.0.1,[::1])
  EXAMPLE_HTTPS          "1" when the site is served over HTTPS: cookies are
                         then marked Secure (default "0", plain HTTP)

The templates and views are the same in both EXAMPLE_FLAGS modes; only the
wiring below differs.
"""
import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# The apps that own the feature-flipper table (featureflipper) and the
# FeatureFlag model (flags) are shared with flagproxy's end-to-end test site
# in ../django, and the flagproxy_django package lives in ../python. In your
# own project these would be installed packages; here we put their
# directories on the import path instead of copying them.
for _path in (BASE_DIR.parent / 'django', BASE_DIR.parent / 'python'):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))


def database_from_url(url):
    """Turn a dj-database-url style URL into a DATABASES entry.

    sqlite:///db.sqlite3 (relative path), sqlite:////abs/path.db,
    postgres://user:password@host:port/name?sslmode=disable (or postgresql://).
    flagproxy's --database takes the same URL.
    """
    if url.startswith('sqlite:///'):
        name = url[len('sqlite:///'):]
        if not name:
            raise ImproperlyConfigured(f'no file name in database URL {url!r}')
        return {'ENGINE': 'django.db.backends.sqlite3', 'NAME': name}
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
    raise ImproperlyConfigured(f'unsupported database URL {url!r} (sqlite:/// or postgres://)')


EXAMPLE_FLAGS = os.environ.get('EXAMPLE_FLAGS', 'flagproxy')
if EXAMPLE_FLAGS not in ('flagproxy', 'waffle'):
    raise ImproperlyConfigured(f'EXAMPLE_FLAGS must be "flagproxy" or "waffle", not {EXAMPLE_FLAGS!r}')

SECRET_KEY = os.environ.get('EXAMPLE_SECRET_KEY', 'example-insecure-secret-key-change-me')
DEBUG = os.environ.get('EXAMPLE_DEBUG', '1') == '1'
ALLOWED_HOSTS = os.environ.get('EXAMPLE_ALLOWED_HOSTS', 'localhost,127.0.0.1,[::1]').split(',')

INSTALLED_APPS = [
    'django.contrib.admin',
    'django.contrib.auth',
    'django.contrib.contenttypes',
    'django.contrib.sessions',
    'django.contrib.messages',
    'django.contrib.staticfiles',
    # The flag tables stay the site's own, whoever evaluates them: their
    # migrations, their admin pages, waffle's management commands.
    'waffle',          # waffle_flag, waffle_switch, waffle_sample
    'featureflipper',  # featureflipper_feature and the can_flip_with_url permission
    'flags',           # the FeatureFlag model: flags_featureflag
    'pages',           # this example's page
]

MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
    'django.middleware.clickjacking.XFrameOptionsMiddleware',
]

TEMPLATES = [
    {
        'BACKEND': 'django.template.backends.django.DjangoTemplates',
        'DIRS': [],
        'APP_DIRS': True,
        'OPTIONS': {
            'context_processors': [
                'django.template.context_processors.debug',
                # waffle's tags and flagproxy's find the request here.
                'django.template.context_processors.request',
                'django.contrib.auth.context_processors.auth',
                'django.contrib.messages.context_processors.messages',
                'pages.context_processors.flags_mode',
            ],
            'libraries': {},
        },
    },
]

if EXAMPLE_FLAGS == 'flagproxy':
    # flagproxy has decided every flag before the request arrives; Django
    # only reads the X-Flagproxy-Flags header.
    INSTALLED_APPS.append('flagproxy_django')
    # request.features and request.features_panel, from the header.
    MIDDLEWARE.append('flagproxy_django.middleware.FlagproxyMiddleware')
    # {{ features.x }} in templates.
    TEMPLATES[0]['OPTIONS']['context_processors'].append('flagproxy_django.context_processors.features')
    # Templates keep {% load waffle_tags %}: the name now loads flagproxy's
    # waffle-compatible {% flag %}, {% switch %} and {% sample %}.
    # {% load feature_tag %} is flagproxy_django's own library.
    TEMPLATES[0]['OPTIONS']['libraries']['waffle_tags'] = 'flagproxy_django.templatetags.flagproxy_waffle'
else:
    # Everything evaluated in this process, with a database query (or a
    # cache lookup) per flag: how the site ran before flagproxy.
    MIDDLEWARE += [
        # Writes waffle's dwf_ (percentage) and dwft_ (testing) cookies.
        'waffle.middleware.WaffleMiddleware',
        # request.features from featureflipper_feature and FeatureFlag.
        'pages.inprocess.FeatureFlipperMiddleware',
    ]
    TEMPLATES[0]['OPTIONS']['context_processors'].append('pages.inprocess.features')
    TEMPLATES[0]['OPTIONS']['libraries']['feature_tag'] = 'pages.templatetags.inprocess_feature_tag'
    # waffle caches its rows in Django's cache. A per-process memory cache
    # would keep a flag changed in the admin stale in the other gunicorn
    # workers for up to 5 minutes; a real site shares Redis or Memcached.
    # The example simply does not cache.
    CACHES = {'default': {'BACKEND': 'django.core.cache.backends.dummy.DummyCache'}}

ROOT_URLCONF = 'mysite.urls'
WSGI_APPLICATION = 'mysite.wsgi.application'

DATABASES = {
    'default': database_from_url(os.environ.get('EXAMPLE_DATABASE_URL', 'sqlite:///db.sqlite3')),
}
DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'

LANGUAGE_CODE = 'en-us'
TIME_ZONE = 'UTC'
USE_I18N = True
USE_TZ = True

STATIC_URL = '/static/'

LOGIN_REDIRECT_URL = '/'
LOGOUT_REDIRECT_URL = '/'

# waffle marks its dwf_ cookies Secure by default. The example runs over
# plain HTTP unless EXAMPLE_HTTPS=1. `manage.py flagproxy_settings` copies
# this (and every other WAFFLE_* setting) into flagproxy's settings file,
# so flagproxy writes the same cookies waffle's middleware would.
HTTPS = os.environ.get('EXAMPLE_HTTPS', '0') == '1'
WAFFLE_SECURE = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
