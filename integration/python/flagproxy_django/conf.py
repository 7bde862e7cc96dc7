"""flagproxy_django's settings, read when needed so that override_settings works.

``FLAGPROXY_SIGNING_KEY``
    The proxy's ``--signing-key``: a string (its UTF-8 bytes are the key),
    bytes, or a list of them while keys are rotated. When set, every request
    must carry a valid X-Flagproxy-Signature. Absent or None: no checking.
``FLAGPROXY_SIGNATURE_MAX_AGE``
    How many seconds a signature's time may lie in the past or the future;
    default 300.
``FLAGPROXY_URL``, ``FLAGPROXY_ADMIN_URL``, ``FLAGPROXY_SETTINGS_FILE``
    Where ``manage.py flagproxy_doctor`` finds flagproxy's listener, its
    admin listener and its --django-settings file (see doctor.py).
``FLAGPROXY_REPORT_READS``
    Whether responses to requests that came through flagproxy report the
    names the app read in X-Flagproxy-Reads (signed with every signing key
    when FLAGPROXY_SIGNING_KEY is set); default True.
"""
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

DEFAULT_SIGNATURE_MAX_AGE = 300

MIDDLEWARE_PATH = 'flagproxy_django.middleware.FlagproxyMiddleware'


def signing_keys():
    """The signing keys as a tuple of bytes; empty when checking is off.

    Raises ImproperlyConfigured for a value of the wrong type or an empty
    key (an empty key signs nothing: it is a mistake, not "off").
    """
    value = getattr(settings, 'FLAGPROXY_SIGNING_KEY', None)
    if value is None:
        return ()
    keys = list(value) if isinstance(value, (list, tuple)) else [value]
    if not keys:
        raise ImproperlyConfigured('FLAGPROXY_SIGNING_KEY is an empty list; use None to turn signature checking off')
    out = []
    for key in keys:
        if isinstance(key, str):
            key = key.encode('utf-8')
        if not isinstance(key, bytes):
            raise ImproperlyConfigured('FLAGPROXY_SIGNING_KEY must be a string, bytes, or a list of them, '
                                       f'not {type(key).__name__}')
        if not key:
            raise ImproperlyConfigured('FLAGPROXY_SIGNING_KEY holds an empty key; use None to turn signature '
                                       'checking off')
        out.append(key)
    return tuple(out)


def report_reads():
    """FLAGPROXY_REPORT_READS: whether responses report the names read (default True)."""
    return bool(getattr(settings, 'FLAGPROXY_REPORT_READS', True))


def signature_max_age():
    """FLAGPROXY_SIGNATURE_MAX_AGE in seconds; ImproperlyConfigured if invalid."""
    value = getattr(settings, 'FLAGPROXY_SIGNATURE_MAX_AGE', DEFAULT_SIGNATURE_MAX_AGE)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ImproperlyConfigured(f'FLAGPROXY_SIGNATURE_MAX_AGE must be a positive number of seconds, not {value!r}')
    return value


def middleware_installed(base, overriding=None):
    """Whether some MIDDLEWARE entry is the class ``base`` or a subclass; with
    ``overriding``, only a subclass that overrides that method counts.

    Entries that cannot be imported are skipped: Django reports them.
    """
    for path in settings.MIDDLEWARE or ():
        try:
            cls = import_string(path)
        except ImportError:
            continue
        if not (isinstance(cls, type) and issubclass(cls, base)):
            continue
        if overriding is None or getattr(cls, overriding) is not getattr(base, overriding):
            return True
    return False


#: Where ``manage.py flagproxy_doctor`` finds flagproxy by default: its
#: proxy listener (``FLAGPROXY_URL``) and its admin listener
#: (``FLAGPROXY_ADMIN_URL``), and the settings file flagproxy reads
#: (``FLAGPROXY_SETTINGS_FILE``, none by default).
DEFAULT_PROXY_URL = 'http://127.0.0.1:8080'
DEFAULT_ADMIN_URL = 'http://127.0.0.1:9090'


def doctor_defaults():
    """The doctor's defaults: (proxy URL, admin URL, settings file or None)."""
    return (getattr(settings, 'FLAGPROXY_URL', DEFAULT_PROXY_URL),
            getattr(settings, 'FLAGPROXY_ADMIN_URL', DEFAULT_ADMIN_URL),
            getattr(settings, 'FLAGPROXY_SETTINGS_FILE', None))
