"""django-flags' (cfpb) Python API, answered from flagproxy's header.

Drop-in replacements for ``flags.state.flag_state``, ``flag_enabled`` and
``flag_disabled``, the decorators of ``flags.decorators`` and the views of
``flags.views``, with django-flags 5.x's names, signatures and return values.
flagproxy evaluated each flag's conditions (the FLAGS setting and the
``flags_flagstate`` rows); this module only reads the decision:

- a flag the header carries is True or False;
- a name it does not carry is unknown: ``flag_state`` returns None, as
  django-flags does for a flag no source defines, so ``flag_disabled`` is
  True. When the header was missing or rejected every name is unknown (the
  middleware has already logged why).

The header's ``flags`` hold the flags of every library flagproxy reads, so a
waffle flag of the same name answers here too. Extra keyword arguments are
accepted and ignored (flagproxy passed none to the conditions). Nothing is
read from the database and this module does not import django-flags.
"""
import inspect
import logging
import warnings
from functools import wraps

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from django.utils.decorators import classonlymethod
from django.views.generic import TemplateView

from .decisions import current

__all__ = [
    'flag_state', 'flag_enabled', 'flag_disabled', 'flag_check', 'flag_required',
    'FlaggedViewMixin', 'FlaggedTemplateView',
]

#: django-flags' logger for FLAGS_STATE_LOGGING.
logger = logging.getLogger('flags.sources')


def flag_state(flag_name, request=None, **kwargs):
    """The flag's decision for ``request`` (or the current request).

    True or False for a flag the header carries, None for a name it does
    not carry (django-flags' answer for an unknown flag). With
    FLAGS_STATE_LOGGING set, each known flag's value is logged at INFO on
    the ``flags.sources`` logger, as django-flags does.
    """
    state = current(request).lookup('flags', flag_name)
    if state is not None and getattr(settings, 'FLAGS_STATE_LOGGING', False):
        logger.info('Flag %s evaluated %s by flagproxy.', flag_name, state)
    return state


def flag_enabled(flag_name, request=None, **kwargs):
    """The same value as :func:`flag_state`: True, False, or None if unknown."""
    return flag_state(flag_name, request=request, **kwargs)


def flag_disabled(flag_name, request=None, **kwargs):
    """``not flag_state(…)``: True for a flag that is off or unknown."""
    return not flag_state(flag_name, request=request, **kwargs)


def _warn_if_arguments_differ(func, fallback):
    """django-flags' decoration-time warning about a mismatched fallback."""
    if inspect.getfullargspec(func).args != inspect.getfullargspec(fallback).args:
        warnings.warn(f'Feature flag check fallback for {func.__name__} takes different arguments.',
                      RuntimeWarning, stacklevel=3)


def flag_check(flag_name, state, fallback=None, **fc_kwargs):
    """Serve the view when the flag's truthiness equals ``state``'s.

    Otherwise call ``fallback(request, *args, **kwargs)`` or, without a
    fallback, raise Http404. An unknown flag counts as off.
    """
    def decorator(func):
        if fallback is not None:
            _warn_if_arguments_differ(func, fallback)

        @wraps(func)
        def inner(request, *args, **kwargs):
            enabled = flag_state(flag_name, request=request, **fc_kwargs)
            if bool(state) == bool(enabled):
                return func(request, *args, **kwargs)
            if fallback is not None:
                return fallback(request, *args, **kwargs)
            raise Http404
        return inner
    return decorator


def flag_required(flag_name, fallback_view=None, pass_if_set=True):
    """``flag_check(flag_name, pass_if_set, fallback=fallback_view)``."""
    return flag_check(flag_name, pass_if_set, fallback=fallback_view)


class FlaggedViewMixin:
    """A class-based view served only when ``flag_name`` has ``state``.

    As in django-flags, ``flag_name``, ``state`` (default True) and
    ``fallback`` (a view function; None gives 404) are class attributes or
    ``as_view()`` arguments, and the deprecated ``condition`` replaces
    ``state`` with a FutureWarning.
    """

    flag_name = None
    fallback = None
    state = True
    condition = None

    @classonlymethod
    def as_view(cls, **initkwargs):
        flag_name = initkwargs.get('flag_name', cls.flag_name)
        state = initkwargs.get('state', cls.state)
        fallback = initkwargs.get('fallback', cls.fallback)
        condition = initkwargs.get('condition', cls.condition)
        if flag_name is None:
            raise ImproperlyConfigured("FlaggedViewMixin requires a 'flag_name' argument.")
        if condition is not None:
            warnings.warn('condition attribute of FlaggedViewMixin is deprecated and will be removed in a future '
                          'version of Django-Flags. Please use the state attribute instead.',
                          FutureWarning, stacklevel=2)
            state = condition
        return flag_check(flag_name, state, fallback=fallback)(super().as_view(**initkwargs))


class FlaggedTemplateView(FlaggedViewMixin, TemplateView):
    """A TemplateView behind :class:`FlaggedViewMixin`."""
