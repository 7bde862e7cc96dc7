"""System checks: the settings and the middleware (``manage.py check``)."""
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from . import conf


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
    return errors
