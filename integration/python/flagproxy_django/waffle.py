"""django-waffle's Python API, answered from flagproxy's header.

Drop-in replacements for ``waffle.flag_is_active``, ``switch_is_active``,
``sample_is_active``, the decorators of ``waffle.decorators`` and the
mixins of ``waffle.mixins``. A name the header does not carry gets
waffle's default: settings.WAFFLE_FLAG_DEFAULT, WAFFLE_SWITCH_DEFAULT or
WAFFLE_SAMPLE_DEFAULT (each False unless set). When the header was
accepted and still lacks the name, the WAFFLE_LOG_MISSING_FLAGS (…SWITCHES,
…SAMPLES) level is honoured on the ``waffle`` logger, with waffle's
messages. Nothing reads the database: WAFFLE_CREATE_MISSING_* has no effect.

A sample's value is the proxy's roll for this request, so it is the same
for every call in one request (waffle rolls again on every call).
"""
import logging
from functools import WRAPPER_ASSIGNMENTS, partial, wraps

from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse

from .decisions import current

__all__ = [
    'flag_is_active', 'switch_is_active', 'sample_is_active', 'waffle_flag', 'waffle_switch',
    'BaseWaffleMixin', 'WaffleFlagMixin', 'WaffleSwitchMixin', 'WaffleSampleMixin',
]

logger = logging.getLogger('waffle')


def _decide(decisions, kind, name, setting, label):
    value = getattr(decisions, kind).get(name)
    if value is not None:
        return value
    if decisions.error is None:
        level = getattr(settings, f'WAFFLE_LOG_MISSING_{kind.upper()}', None)
        if level:
            logger.log(level, '%s %s not found', label, name)
    return bool(getattr(settings, setting, False))


def flag_is_active(request, flag_name, read_only=False):
    """Whether the flag is on for ``request`` (or the current request).

    ``read_only`` is accepted for waffle compatibility; reading the header
    never has side effects.
    """
    return _decide(current(request), 'flags', flag_name, 'WAFFLE_FLAG_DEFAULT', 'Flag')


def switch_is_active(switch_name):
    """Whether the switch is on, for the request being processed."""
    return _decide(current(), 'switches', switch_name, 'WAFFLE_SWITCH_DEFAULT', 'Switch')


def sample_is_active(sample_name):
    """The proxy's roll of the sample, for the request being processed."""
    return _decide(current(), 'samples', sample_name, 'WAFFLE_SAMPLE_DEFAULT', 'Sample')


def _active(name, is_active):
    """is_active(name), negated for a name with a leading '!'."""
    if name.startswith('!'):
        return not is_active(name[1:])
    return is_active(name)


def _guard(view, check, redirect_to):
    @wraps(view, assigned=WRAPPER_ASSIGNMENTS)
    def _wrapped_view(request, *args, **kwargs):
        if not check(request):
            response = _redirect_response(redirect_to, *args, **kwargs)
            if response is None:
                raise Http404
            return response
        return view(request, *args, **kwargs)
    return _wrapped_view


def waffle_flag(flag_name, redirect_to=None):
    """Serve the view only when the flag is on (off for ``'!name'``).

    Otherwise redirect to ``redirect_to`` (a URL name or view, reversed with
    the view's arguments), or raise Http404 when it is None or cannot be
    reversed, like waffle's decorator.
    """
    def decorator(view):
        return _guard(view, lambda request: _active(flag_name, partial(flag_is_active, request)), redirect_to)
    return decorator


def waffle_switch(switch_name, redirect_to=None):
    """Serve the view only when the switch is on; see :func:`waffle_flag`."""
    def decorator(view):
        return _guard(view, lambda request: _active(switch_name, switch_is_active), redirect_to)
    return decorator


def _redirect_response(view, *args, **kwargs):
    if not view:
        return None
    try:
        return redirect(reverse(view, args=args, kwargs=kwargs))
    except NoReverseMatch:
        return None


class BaseWaffleMixin:
    """The check shared by the mixins, as in waffle."""

    def validate_waffle(self, waffle, func):
        """func(waffle), negated for a name with a leading '!'."""
        return _active(waffle, func)

    def invalid_waffle(self):
        """Answer an inactive flag, switch or sample: HTTP 404."""
        raise Http404('Inactive waffle')


class WaffleFlagMixin(BaseWaffleMixin):
    """Dispatch only when the flag named by ``waffle_flag`` is on, else 404."""

    waffle_flag = None

    def dispatch(self, request, *args, **kwargs):
        if not self.validate_waffle(self.waffle_flag, partial(flag_is_active, request)):
            return self.invalid_waffle()
        return super().dispatch(request, *args, **kwargs)


class WaffleSwitchMixin(BaseWaffleMixin):
    """Dispatch only when the switch named by ``waffle_switch`` is on, else 404."""

    waffle_switch = None

    def dispatch(self, request, *args, **kwargs):
        if not self.validate_waffle(self.waffle_switch, switch_is_active):
            return self.invalid_waffle()
        return super().dispatch(request, *args, **kwargs)


class WaffleSampleMixin(BaseWaffleMixin):
    """Dispatch only when the sample named by ``waffle_sample`` is on, else 404."""

    waffle_sample = None

    def dispatch(self, request, *args, **kwargs):
        if not self.validate_waffle(self.waffle_sample, sample_is_active):
            return self.invalid_waffle()
        return super().dispatch(request, *args, **kwargs)
