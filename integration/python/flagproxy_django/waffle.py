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

With the waffle drop-in installed (``WAFFLE_FLAG_MODEL =
'flagproxy_django.Flag'`` and the like, see waffle_models.py), waffle's own
functions answer through the same code, and where no header reached the
code at all (outside a request, Django's test client) both these functions
and waffle's let waffle's own code answer from the database. With
``FLAGPROXY_SHADOW`` each answer from the header is also compared with
waffle's (flagproxy_django.shadow).
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

#: kind -> (the setting that swaps waffle's model, flagproxy's model, the
#: setting of the default, waffle's word in log messages).
KINDS = {
    'flags': ('WAFFLE_FLAG_MODEL', 'flagproxy_django.Flag', 'WAFFLE_FLAG_DEFAULT', 'Flag'),
    'switches': ('WAFFLE_SWITCH_MODEL', 'flagproxy_django.Switch', 'WAFFLE_SWITCH_DEFAULT', 'Switch'),
    'samples': ('WAFFLE_SAMPLE_MODEL', 'flagproxy_django.Sample', 'WAFFLE_SAMPLE_DEFAULT', 'Sample'),
}


def waffle_dropin_installed(kind=None):
    """Whether waffle's model of ``kind`` (default: any kind) is flagproxy's drop-in."""
    kinds = KINDS if kind is None else (kind,)
    return any(getattr(settings, KINDS[k][0], None) == KINDS[k][1] for k in kinds)


def in_process(decisions, kind, name):
    """Whether waffle's own code answers for ``name``: no header reached
    this code (``decisions.absent``) and no test forced a value."""
    return decisions.absent and name not in getattr(decisions, kind)


def header_answer(decisions, kind, name, request=None):
    """The header's value of ``name`` (its default when the header lacks
    it), compared with waffle's own answer when FLAGPROXY_SHADOW is on."""
    value = decisions.lookup(kind, name)
    if value is None:
        value = _default(decisions, kind, name)
    if getattr(settings, 'FLAGPROXY_SHADOW', False):
        from . import shadow

        shadow.compare(decisions, kind, name, value, request)
    return value


def _default(decisions, kind, name):
    _, _, setting, label = KINDS[kind]
    if decisions.error is None:
        level = getattr(settings, f'WAFFLE_LOG_MISSING_{kind.upper()}', None)
        if level:
            logger.log(level, '%s %s not found', label, name)
    return bool(getattr(settings, setting, False))


def _answer(request, kind, name, waffle_function):
    decisions = current(request)
    if in_process(decisions, kind, name) and waffle_dropin_installed(kind):
        return waffle_function()
    return header_answer(decisions, kind, name, request)


def _waffle():
    import waffle  # only with the drop-in, so only when waffle is installed

    return waffle


def flag_is_active(request, flag_name, read_only=False):
    """Whether the flag is on for ``request`` (or the current request).

    ``read_only`` is passed on to waffle when its own code answers; reading
    the header never has side effects.
    """
    return _answer(request, 'flags', flag_name, lambda: _waffle().flag_is_active(request, flag_name, read_only))


def switch_is_active(switch_name):
    """Whether the switch is on, for the request being processed."""
    return _answer(None, 'switches', switch_name, lambda: _waffle().switch_is_active(switch_name))


def sample_is_active(sample_name):
    """The proxy's roll of the sample, for the request being processed."""
    return _answer(None, 'samples', sample_name, lambda: _waffle().sample_is_active(sample_name))


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
