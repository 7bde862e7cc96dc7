"""The --django-settings file of flagproxy, built from the running site.

flagproxy must agree with the site about the settings that shape sessions,
users, languages and flag decisions. :func:`collect` writes the effective
value of every setting flagproxy reads (the site's value, else the Django
or library default), plus facts that only the running site knows:

``DJANGO_VERSION``
    ``django.get_version()``.
``SESSION_STORE_QUALNAME``
    ``__qualname__`` of the SESSION_ENGINE module's SessionStore class.
``WAFFLE_FLAG_MODEL`` (``…SWITCH…``, ``…SAMPLE…``)
    waffle's own model (``waffle.Flag`` …) where the setting names the
    waffle drop-in's (``flagproxy_django.Flag`` …): those are waffle's
    tables, with waffle's columns.
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

and django-flags' keys (see :func:`django_flags_settings`): ``FLAGS`` in
its JSON form or ``FLAGS_ERROR``, ``FLAG_SOURCES``,
``DATA_UPLOAD_MAX_NUMBER_FIELDS`` and ``FLAGPROXY_USERNAME_FIELD``.
"""
import builtins
import datetime
import importlib
import math

import django
from django.apps import apps
from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.middleware.locale import LocaleMiddleware
from django.utils.functional import Promise
from django.utils.translation import check_for_language

from .conf import middleware_installed, signing_keys
from .waffle import KINDS

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
    for name, dropin, _, _ in KINDS.values():
        if data.get(name) == dropin:
            # The waffle drop-in's models are waffle's tables, read as waffle's.
            data[name] = LIBRARY_SETTINGS[name][0]

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
    data.update(django_flags_settings(notes))
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


# django-flags (cfpb) ---------------------------------------------------------

#: The FLAG_SOURCES entries flagproxy reproduces: django-flags' default.
DJANGO_FLAGS_SOURCES = ('flags.sources.SettingsFlagsSource', 'flags.sources.DatabaseFlagsSource')

#: Django's default DATA_UPLOAD_MAX_NUMBER_FIELDS, which flagproxy assumes.
DEFAULT_MAX_NUMBER_FIELDS = 1000


def django_flags_settings(notes):
    """django-flags' keys of the settings file; ``notes`` gets the notes.

    ``FLAGS`` (as :func:`flags_json` writes it) or, when django-flags cannot
    read the setting, ``FLAGS_ERROR`` (only when the site sets FLAGS);
    ``FLAG_SOURCES`` when the site sets it; ``DATA_UPLOAD_MAX_NUMBER_FIELDS``
    when it is not 1000 (null for no limit); ``FLAGPROXY_USERNAME_FIELD``,
    the user model's USERNAME_FIELD, which the ``user`` condition compares.
    """
    data = {}
    if hasattr(settings, 'FLAGS'):
        try:
            conditions = read_flags(settings.FLAGS)
        except Exception as e:  # whatever django-flags would raise on every flag check
            data['FLAGS_ERROR'] = {'type': _exception_name(e), 'message': str(e)}
            notes.append(f'django-flags cannot read FLAGS ({data["FLAGS_ERROR"]["type"]}: {e}): every flag '
                         'check raises while SettingsFlagsSource is in FLAG_SOURCES; FLAGS_ERROR is written')
        else:
            data['FLAGS'] = flags_json(conditions, notes)
    if hasattr(settings, 'FLAG_SOURCES'):
        data['FLAG_SOURCES'] = _convert('FLAG_SOURCES', settings.FLAG_SOURCES, STRS)
        for path in data['FLAG_SOURCES']:
            if path not in DJANGO_FLAGS_SOURCES:
                notes.append(f'FLAG_SOURCES names {path}, which flagproxy cannot reproduce: '
                             'the flags it defines stay unknown to flagproxy')
    limit = getattr(settings, 'DATA_UPLOAD_MAX_NUMBER_FIELDS', DEFAULT_MAX_NUMBER_FIELDS)
    if limit != DEFAULT_MAX_NUMBER_FIELDS:
        data['DATA_UPLOAD_MAX_NUMBER_FIELDS'] = None if limit is None else _convert(
            'DATA_UPLOAD_MAX_NUMBER_FIELDS', limit, INT)
    try:
        data['FLAGPROXY_USERNAME_FIELD'] = _convert('USERNAME_FIELD', get_user_model().USERNAME_FIELD, STR)
    except ImproperlyConfigured as e:
        notes.append(f'FLAGPROXY_USERNAME_FIELD is left out ({e}): flagproxy compares "username"')
    return data


def read_flags(setting):
    """The FLAGS setting as django-flags 5.x reads it: name -> conditions.

    Each condition is a ``(condition, value, required)`` triple, in the
    setting's order. The rules are SettingsFlagsSource.get_flags()'s, step
    by step, so this raises where it raises (KeyError for a dict without
    ``condition`` or ``value``, IndexError for a sequence of fewer than two
    items, TypeError for None, AttributeError for a FLAGS that is not a
    dict), and reads the removed ``{'FLAG': {'boolean': True}}`` form
    character by character, as it does.
    """
    flags = {}
    for flag, conditions in setting.items():
        flags[flag] = []
        for c in conditions:
            if isinstance(c, dict):
                triple = (c['condition'], c['value'], c.get('required', False))
            elif len(c) == 3:
                triple = (c[0], c[1], c[2])
            else:
                triple = (c[0], c[1], False)
            hash(triple[0])  # django-flags looks the name up in its registry of conditions
            flags[flag].append(triple)
    return flags


def flags_json(flags, notes=None):
    """:func:`read_flags`'s result in the settings file's JSON form.

    ``{name: [{"condition": str or None, "value": V, "required": bool}]}``
    where V is :func:`flag_value_json`'s. A flag name that is not a string
    cannot be a JSON key: it is left out, with a note.
    """
    out = {}
    for name, conditions in flags.items():
        if not isinstance(name, str):
            if notes is not None:
                notes.append(f'FLAGS holds the flag name {name!r}, which is not a string: it is left out')
            continue
        out[name] = [{'condition': condition if isinstance(condition, str) else None,
                      'value': flag_value_json(value),
                      'required': _truth('FLAGS', required)} for condition, value, required in conditions]
    return out


def flag_value_json(value):
    """A condition's value as JSON: str, int, float, bool and None as they
    are, ``{"$datetime": isoformat}``, ``{"$date": "YYYY-MM-DD"}``, else
    ``{"$other": type name, "truthy": bool(value)}`` (also for a float that
    JSON cannot hold: NaN, infinities)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, datetime.datetime):
        return {'$datetime': value.isoformat()}
    if isinstance(value, datetime.date):
        return {'$date': value.isoformat()}
    return {'$other': type(value).__name__, 'truthy': _truth('FLAGS', value)}


def _truth(name, value):
    """bool(value), or SettingsError if the value refuses to say."""
    try:
        return bool(value)
    except Exception as e:
        raise SettingsError(f'{name} holds {value!r}, whose truth cannot be tested: {e}') from None


def _exception_name(e):
    """The class of ``e``: its name for a builtin, else module.Class."""
    cls = type(e)
    if getattr(builtins, cls.__name__, None) is cls:
        return cls.__name__
    return f'{cls.__module__}.{cls.__qualname__}'
