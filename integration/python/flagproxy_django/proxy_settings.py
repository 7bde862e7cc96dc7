"""The --django-settings file of flagproxy, built from the running site.

flagproxy must agree with the site about the settings that shape sessions,
users, languages and flag decisions. :func:`collect` writes the effective
value of every setting flagproxy reads (the site's value, else the Django
or library default), plus facts that only the running site knows:

``DJANGO_VERSION``
    ``django.get_version()``.
``SESSION_STORE_QUALNAME``
    ``__qualname__`` of the SESSION_ENGINE module's SessionStore class.
``FLAGPROXY_WAFFLE_FLAG_TABLE``
    ``Meta.db_table`` of the WAFFLE_FLAG_MODEL (left out when that model is
    not installed).
``FLAGPROXY_LOCALE_MIDDLEWARE``
    whether MIDDLEWARE holds LocaleMiddleware or a subclass of it.
``FLAGPROXY_AVAILABLE_LANGUAGES``
    the LANGUAGES codes that have a translation catalog (only with
    USE_I18N).
``FLAGPROXY_I18N_PATTERNS``, ``FLAGPROXY_PREFIX_DEFAULT_LANGUAGE``
    whether the root URLconf uses i18n_patterns, and with which
    prefix_default_language.
``FLAGPROXY_SIGNING_KEY``
    this package's own setting, when set: flagproxy signs the header with
    it (with the first key of a list, so list the newest first).
"""
import importlib

import django
from django.apps import apps
from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.middleware.locale import LocaleMiddleware
from django.utils.functional import Promise
from django.utils.translation import check_for_language

from .conf import middleware_installed, signing_keys

# The JSON type of each setting, as flagproxy checks it.
STR = 'a string'
STRS = 'a list of strings'
BOOL = 'true or false'
INT = 'an integer'
PAIRS = 'a list of [code, name] pairs'
ANY = 'a JSON scalar'

#: Django settings flagproxy reads. Those missing from this Django version
#: and from the site's settings (SECRET_KEY_FALLBACKS before 4.1,
#: DEFAULT_HASHING_ALGORITHM from 4.0) are left out.
DJANGO_SETTINGS = {
    'SECRET_KEY': STR,
    'SECRET_KEY_FALLBACKS': STRS,
    'SESSION_ENGINE': STR,
    'SESSION_COOKIE_NAME': STR,
    'SESSION_COOKIE_AGE': INT,
    'AUTH_USER_MODEL': STR,
    'AUTHENTICATION_BACKENDS': STRS,
    'LANGUAGE_CODE': STR,
    'LANGUAGES': PAIRS,
    'LANGUAGE_COOKIE_NAME': STR,
    'USE_I18N': BOOL,
    'USE_TZ': BOOL,
    'TIME_ZONE': STR,
    'DEFAULT_HASHING_ALGORITHM': STR,
    'MIDDLEWARE': STRS,
}

#: Library settings flagproxy reads, with the library's default and type
#: (django-waffle 3.0 to 5.0 share these defaults).
LIBRARY_SETTINGS = {
    'FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING': (False, BOOL),
    'WAFFLE_FLAG_DEFAULT': (False, BOOL),
    'WAFFLE_SWITCH_DEFAULT': (False, BOOL),
    'WAFFLE_SAMPLE_DEFAULT': (False, BOOL),
    'WAFFLE_OVERRIDE': (False, BOOL),
    'WAFFLE_COOKIE': ('dwf_%s', STR),
    'WAFFLE_TEST_COOKIE': ('dwft_%s', STR),
    'WAFFLE_SECURE': (True, BOOL),
    'WAFFLE_MAX_AGE': (2592000, INT),
    'WAFFLE_FLAG_MODEL': ('waffle.Flag', STR),
    'WAFFLE_SWITCH_MODEL': ('waffle.Switch', STR),
    'WAFFLE_SAMPLE_MODEL': ('waffle.Sample', STR),
    'WAFFLE_CREATE_MISSING_FLAGS': (False, BOOL),
    'WAFFLE_CREATE_MISSING_SWITCHES': (False, BOOL),
    'WAFFLE_CREATE_MISSING_SAMPLES': (False, BOOL),
    'WAFFLE_LOG_MISSING_FLAGS': (None, ANY),
    'WAFFLE_LOG_MISSING_SWITCHES': (None, ANY),
    'WAFFLE_LOG_MISSING_SAMPLES': (None, ANY),
    'WAFFLE_CACHE_NAME': ('default', STR),
    'WAFFLE_CACHE_PREFIX': ('waffle:', STR),
    'WAFFLE_READ_FROM_WRITE_DB': (False, BOOL),
    'WAFFLE_ENABLE_ADMIN_PAGES': (True, BOOL),
}


class SettingsError(ValueError):
    """A setting cannot be written as the JSON type flagproxy expects."""


def collect():
    """The settings file's content as a dict, and notes for the user.

    Returns ``(data, notes)``; a note names a setting that was left out.
    Raises SettingsError for a setting of the wrong type.
    """
    data, notes = {}, []

    def put(name, value, kind):
        if value is None and kind != ANY:
            notes.append(f'{name} is None and is left out: flagproxy uses its default')
            return
        data[name] = _convert(name, value, kind)

    for name, kind in DJANGO_SETTINGS.items():
        if hasattr(settings, name):
            put(name, getattr(settings, name), kind)
    for name, (default, kind) in LIBRARY_SETTINGS.items():
        put(name, getattr(settings, name, default), kind)

    data['DJANGO_VERSION'] = django.get_version()
    try:
        engine = importlib.import_module(settings.SESSION_ENGINE)
        data['SESSION_STORE_QUALNAME'] = engine.SessionStore.__qualname__
    except (ImportError, AttributeError) as e:
        raise SettingsError(f'SESSION_ENGINE {settings.SESSION_ENGINE!r} has no SessionStore: {e}') from None

    try:
        data['FLAGPROXY_WAFFLE_FLAG_TABLE'] = apps.get_model(data['WAFFLE_FLAG_MODEL'])._meta.db_table
    except (LookupError, ValueError):
        if hasattr(settings, 'WAFFLE_FLAG_MODEL'):
            notes.append(f'WAFFLE_FLAG_MODEL {data["WAFFLE_FLAG_MODEL"]!r} is not an installed model: '
                         'FLAGPROXY_WAFFLE_FLAG_TABLE is left out')

    keys = getattr(settings, 'FLAGPROXY_SIGNING_KEY', None)
    if keys is not None:
        try:
            data['FLAGPROXY_SIGNING_KEY'] = [k.decode('utf-8') if isinstance(k, bytes) else k for k in signing_keys()]
        except UnicodeDecodeError:
            notes.append('FLAGPROXY_SIGNING_KEY holds bytes that are not UTF-8 and is left out: '
                         'give flagproxy the key with --signing-key')

    data['FLAGPROXY_LOCALE_MIDDLEWARE'] = middleware_installed(LocaleMiddleware)
    if middleware_installed(LocaleMiddleware, overriding='process_request'):
        notes.append('a subclass of LocaleMiddleware in MIDDLEWARE overrides process_request: flagproxy '
                     'derives LANGUAGE_CODE with the stock rules, so waffle\'s languages column may differ')
    if settings.USE_I18N:
        data['FLAGPROXY_AVAILABLE_LANGUAGES'] = [code for code, _ in data['LANGUAGES'] if check_for_language(code)]
    urlconf = getattr(settings, 'ROOT_URLCONF', None)
    prefixed, prefix_default = is_language_prefix_patterns_used(urlconf) if urlconf else (False, False)
    data['FLAGPROXY_I18N_PATTERNS'] = bool(prefixed)
    data['FLAGPROXY_PREFIX_DEFAULT_LANGUAGE'] = bool(prefix_default)
    return data, notes


def _convert(name, value, kind):
    """``value`` as the JSON type ``kind``, or SettingsError."""
    def text(v):
        if isinstance(v, Promise):  # a lazy translation
            v = str(v)
        if not isinstance(v, str):
            raise SettingsError(f'{name} must be {kind}, but holds {v!r}')
        return v

    if kind == STR:
        return text(value)
    if kind == BOOL:
        return bool(value)  # Django and the libraries test truthiness
    if kind == INT:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f'{name} must be {kind}, not {value!r}')
        return value
    if kind == ANY:
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise SettingsError(f'{name} must be {kind}, not {value!r}')
        return value
    if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
        raise SettingsError(f'{name} must be {kind}, not {value!r}')
    if kind == STRS:
        return [text(v) for v in value]
    pairs = []
    for pair in value:
        try:
            code, label = () if isinstance(pair, (str, bytes)) else pair
        except (TypeError, ValueError):
            raise SettingsError(f'{name} must be {kind}, but holds {pair!r}') from None
        pairs.append([text(code), text(label)])
    return pairs
