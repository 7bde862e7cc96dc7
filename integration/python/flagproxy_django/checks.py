"""System checks: the settings and the middleware (``manage.py check``)."""
import sys

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import conf

WAFFLE_MIDDLEWARE = 'waffle.middleware.WaffleMiddleware'

#: Modules whose functions read flags in process or from the header: a
#: middleware whose module holds one of them reads flags.
_READER_MODULES = ('waffle', 'flags.state', 'flagproxy_django.waffle', 'flagproxy_django.djflags')
_READERS = ('flag_is_active', 'switch_is_active', 'sample_is_active', 'flag_state', 'flag_enabled', 'flag_disabled')


@checks.register('flagproxy')
def check_settings(app_configs, **kwargs):
    """Report invalid FLAGPROXY_* settings and a missing middleware."""
    from .middleware import FlagproxyMiddleware

    errors = []
    for error_id, read in (('flagproxy.E001', conf.signing_keys), ('flagproxy.E002', conf.signature_max_age)):
        try:
            read()
        except ImproperlyConfigured as e:
            errors.append(checks.Error(
                str(e), hint='Until this is fixed every flags header is rejected and every flag takes its default.',
                id=error_id))
    if not conf.middleware_installed(FlagproxyMiddleware):
        errors.append(checks.Warning(
            f'{conf.MIDDLEWARE_PATH} is not in MIDDLEWARE: request.features stays unset and flag_is_active() '
            'gives every flag its default.',
            hint=f'Add {conf.MIDDLEWARE_PATH!r} to MIDDLEWARE, before any middleware that reads flags.',
            id='flagproxy.W001'))
    return errors + check_middleware_order()


def check_middleware_order():
    """W002: waffle's middleware left installed; W003: a middleware that
    reads flags runs before FlagproxyMiddleware."""
    middleware = list(settings.MIDDLEWARE or ())
    out = []
    if WAFFLE_MIDDLEWARE in middleware:
        out.append(checks.Warning(
            f'{WAFFLE_MIDDLEWARE} is still in MIDDLEWARE: it writes waffle\'s dwf_ cookies from decisions made '
            'in process, beside the ones flagproxy writes.',
            hint=f'Remove {WAFFLE_MIDDLEWARE!r}: flagproxy writes waffle\'s cookies itself.', id='flagproxy.W002'))
    if conf.MIDDLEWARE_PATH not in middleware:
        return out
    for path in middleware[:middleware.index(conf.MIDDLEWARE_PATH)]:
        if path != WAFFLE_MIDDLEWARE and _reads_flags(path):
            out.append(checks.Warning(
                f'{path} comes before {conf.MIDDLEWARE_PATH} and reads flags: it sees every flag at its default.',
                hint=f'Move {conf.MIDDLEWARE_PATH!r} before {path!r}.', id='flagproxy.W003'))
    return out


def _reads_flags(path):
    """Whether the middleware's module holds a flag-reading function."""
    try:
        module = sys.modules[import_string(path).__module__]
    except (ImportError, AttributeError, KeyError):
        return False
    for name in _READERS:
        fn = getattr(module, name, None)
        if callable(fn) and getattr(fn, '__module__', '').startswith(_READER_MODULES):
            return True
    return False
