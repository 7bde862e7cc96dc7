"""FlagproxyMiddleware: reads the flags header for every request."""
import logging
from dataclasses import replace

from django.core.exceptions import ImproperlyConfigured

from . import conf, reads
from .decisions import (
    STATE_STALE, STATE_UNAVAILABLE, Decisions, FeatureDict, FeaturesPanel, activate, deactivate, forcing,
    with_forced,
)
from .header import HeaderError, MissingHeader, read_flags
from .probe import is_probe, report
from .waffle import waffle_dropin_installed

logger = logging.getLogger('flagproxy')

_DEFAULTS = 'every flag, switch and sample takes its default'
_IN_PROCESS = "django-waffle's own code answers (the flagproxy drop-in models)"
_MAX_PATH = 200


class FlagproxyMiddleware:
    """Set ``request.flagproxy``, ``request.features`` and ``request.features_panel``.

    ``request.flagproxy`` is the :class:`~flagproxy_django.decisions.Decisions`
    read from X-Flagproxy-Flags (checked against X-Flagproxy-Signature when
    FLAGPROXY_SIGNING_KEY is set), ``request.features`` a FeatureDict of its
    flags and ``request.features_panel`` a FeaturesPanel. For the duration
    of the request they are also the current decisions, which
    ``switch_is_active()`` and ``sample_is_active()`` use.

    A request from ``manage.py flagproxy_doctor`` (see probe.py) is
    answered here with what its header said.

    A missing, malformed, badly signed or "unavailable" header is logged
    once on the ``flagproxy`` logger and gives empty decisions, so every
    name takes its library default; this middleware never raises for a
    header.

    When the request's header was accepted (it came through flagproxy), the
    names the app read are reported on the response in X-Flagproxy-Reads
    (see :mod:`flagproxy_django.reads`), unless FLAGPROXY_REPORT_READS is
    False.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        decisions, accepted = _read(request)
        decisions = with_forced(decisions)
        if is_probe(request):  # manage.py flagproxy_doctor asking
            return report(request, decisions)
        recorder = reads.Reads() if accepted and conf.report_reads() else None
        decisions = replace(decisions, reads=recorder)
        request.flagproxy = decisions
        request.features = FeatureDict.of(decisions)
        request.features_panel = FeaturesPanel.from_decisions(decisions)
        token = activate(decisions, request)
        try:
            response = self.get_response(request)
        finally:
            deactivate(token)
        if recorder is not None:
            reads.report(response, recorder, conf.signing_keys())
        return response


def read_request(request):
    """The decisions the request's header carries, or empty ones, logged."""
    return _read(request)[0]


def _read(request):
    """read_request, and whether the header was accepted."""
    try:
        keys, max_age = conf.signing_keys(), conf.signature_max_age()
    except ImproperlyConfigured as e:
        _log(logging.ERROR, request, 'cannot check the flags header: %s; %s', e)
        return Decisions.empty(str(e)), False
    try:
        decisions = read_flags(request.META, keys, max_age)
    except MissingHeader as e:
        # Under override_flags (a site's own tests) no header is expected;
        # with the waffle drop-in, waffle's own code answers instead.
        if forcing():
            level, outcome = logging.DEBUG, _DEFAULTS
        elif waffle_dropin_installed():
            level, outcome = logging.INFO, _IN_PROCESS
        else:
            level, outcome = logging.WARNING, _DEFAULTS
        logger.log(level, '%s: %s; %s', _describe(request), e, outcome, extra={'request': request})
        return Decisions.empty(str(e), absent=True), False
    except HeaderError as e:
        _log(logging.WARNING, request, 'flags header rejected: %s; %s', e)
        return Decisions.empty(str(e)), False
    except Exception as e:  # never let a header break the site
        logger.exception('unexpected error reading the flags header for %s; %s', _describe(request), _DEFAULTS,
                         extra={'request': request})
        return Decisions.empty(f'unexpected error: {e!r}'), False
    if decisions.state == STATE_UNAVAILABLE:
        reason = ('flagproxy sent state "unavailable" (it has no flag snapshot yet, or the decisions did not fit '
                  f'in the header; snapshot version {decisions.version!r})')
        _log(logging.WARNING, request, '%s; %s', reason)
        return Decisions.empty(reason, version=decisions.version), True
    if decisions.state == STATE_STALE:
        logger.info('flagproxy sent state "stale" for %s: its flag snapshot %r is out of date (is the database '
                    'reachable?); using it', _describe(request), decisions.version, extra={'request': request})
    if decisions.identity:
        logger.info('flagproxy recognised the visitor of %s from its cache during a database outage '
                    '(identity "stale"); using it', _describe(request), extra={'request': request})
    return decisions, True


def _log(level, request, message, reason):
    logger.log(level, '%s: ' + message, _describe(request), reason, _DEFAULTS, extra={'request': request})


def _describe(request):
    """'GET /path' for a log message, the path cut to a sensible length."""
    path = request.path
    if len(path) > _MAX_PATH:
        path = path[:_MAX_PATH] + '…'
    return f'{request.method} {path}'
