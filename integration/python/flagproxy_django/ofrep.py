"""flagproxy's decisions outside a web request: a small OFREP client.

For code that runs without a request passing through flagproxy (Celery
tasks, management commands, cron jobs), ask flagproxy's OpenFeature Remote
Evaluation Protocol endpoint for the answer the header would carry::

    from flagproxy_django.ofrep import flag_is_active, switch_is_active, sample_is_active

    if flag_is_active('new_checkout', user=order.user, path='/checkout/'):
        ...

Settings (read on every call):

``FLAGPROXY_OFREP_URL``
    The base URL of flagproxy's OFREP endpoint: its admin listener
    (``http://127.0.0.1:9090``) or ``--ofrep-listen``. Unset: every call
    answers the default, with a warning.
``FLAGPROXY_OFREP_KEY``
    One of flagproxy's ``--ofrep-keys``, sent as ``Authorization: Bearer``.
``FLAGPROXY_OFREP_TIMEOUT``
    Seconds to wait for an answer; default 0.5.

On any failure (no URL, flagproxy unreachable or slow, a 401, an unknown
name, no flags loaded yet, an answer that is not OFREP) the functions
return the default a missing name gets from the header:
``WAFFLE_FLAG_DEFAULT``, ``WAFFLE_SWITCH_DEFAULT``,
``WAFFLE_SAMPLE_DEFAULT`` (each False unless set), or ``default=`` when
given; the reason is logged on the ``flagproxy`` logger (WARNING, DEBUG for
an unknown name). Only the standard library is used.

To get the answer a user's web request got, pass what that request had:
``request_context(request)`` captures it (path, query, Accept-Language and
cookies, without the session cookie) as a dict a task can carry, and
``context=`` hands it back. Waffle's percentage flags decided by a roll then
come from the visitor's ``dwf_`` cookies, as on the web; without them
flagproxy answers a deterministic split of the flag and the user.
"""
import json
import logging
import urllib.error
import urllib.request
from urllib.parse import quote

from django.conf import settings
from django.utils.encoding import escape_uri_path

__all__ = ['OFREPError', 'evaluate', 'flag_is_active', 'switch_is_active', 'sample_is_active', 'request_context']

logger = logging.getLogger('flagproxy')

DEFAULT_TIMEOUT = 0.5

_KIND_PREFIXES = ('flag:', 'switch:', 'sample:')


class OFREPError(Exception):
    """An evaluation that gave no value: ``code`` is OFREP's error code
    (``FLAG_NOT_FOUND``, ``GENERAL``, …) or ``UNAVAILABLE`` when flagproxy
    could not be asked; ``details`` says why."""

    def __init__(self, code, details):
        super().__init__(f'{code}: {details}')
        self.code = code
        self.details = details


def _targeting_key(user):
    """The targetingKey of ``user``: a user object's pk (None for an
    anonymous user), or a primary key given as it is."""
    if user is None:
        return None
    if hasattr(user, 'is_authenticated'):
        return str(user.pk) if user.is_authenticated and user.pk is not None else None
    return str(user)


def request_context(request):
    """What flagproxy decided ``request`` from, as a JSON-serialisable dict
    for ``context=``: the user's pk, the path (percent-encoded), the query
    string, the Accept-Language header and the cookies, without Django's
    session cookie (the user is named by the pk)."""
    session_cookie = getattr(settings, 'SESSION_COOKIE_NAME', 'sessionid')
    context = {
        'path': escape_uri_path(request.path),
        'query': request.META.get('QUERY_STRING', ''),
        'cookies': {k: v for k, v in request.COOKIES.items() if k != session_cookie},
    }
    key = _targeting_key(getattr(request, 'user', None))
    if key is not None:
        context['targetingKey'] = key
    language = request.META.get('HTTP_ACCEPT_LANGUAGE')
    if language:
        context['language'] = language
    return context


def _context(user, path, query, language, cookies, context):
    out = dict(context or {})
    key = _targeting_key(user)
    if key is not None:
        out['targetingKey'] = key
    for name, value in (('path', path), ('query', query), ('language', language), ('cookies', cookies)):
        if value is not None:
            out[name] = value
    return out


def evaluate(key, user=None, path=None, query=None, language=None, cookies=None, context=None, timeout=None):
    """Evaluate one OFREP key (``name``, ``flag:name``, ``switch:name``,
    ``sample:name``) and return flagproxy's answer: a dict with ``key``,
    ``value``, ``reason``, ``variant`` and ``metadata``. Raises OFREPError
    when there is no value."""
    base = getattr(settings, 'FLAGPROXY_OFREP_URL', None)
    if not base:
        raise OFREPError('UNAVAILABLE', 'FLAGPROXY_OFREP_URL is not set')
    if timeout is None:
        timeout = getattr(settings, 'FLAGPROXY_OFREP_TIMEOUT', DEFAULT_TIMEOUT)
    body = json.dumps({'context': _context(user, path, query, language, cookies, context)}).encode('utf-8')
    req = urllib.request.Request(
        base.rstrip('/') + '/ofrep/v1/evaluate/flags/' + quote(key, safe=''),
        data=body, method='POST', headers={'Content-Type': 'application/json', 'Accept': 'application/json'})
    api_key = getattr(settings, 'FLAGPROXY_OFREP_KEY', None)
    if api_key:
        req.add_header('Authorization', f'Bearer {api_key}')
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (OSError, ValueError) as e:  # URLError, timeouts, a bad URL
        raise OFREPError('UNAVAILABLE', f'flagproxy could not be asked: {e}') from None
    try:
        answer = json.loads(raw.decode('utf-8'))
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise OFREPError('GENERAL', f'HTTP {status} without an OFREP answer')
    if status != 200:
        raise OFREPError(str(answer.get('errorCode') or f'HTTP_{status}'), str(answer.get('errorDetails', '')))
    if not isinstance(answer.get('value'), bool):
        raise OFREPError('PARSE_ERROR', 'the answer has no boolean value')
    return answer


def _is_active(kind, name, setting, default, kwargs):
    if kind == 'flag':
        key = 'flag:' + name if name.startswith(_KIND_PREFIXES) else name
    else:
        key = f'{kind}:{name}'
    if default is None:
        default = bool(getattr(settings, setting, False))
    try:
        return evaluate(key, **kwargs)['value']
    except OFREPError as e:
        level = logging.DEBUG if e.code == 'FLAG_NOT_FOUND' else logging.WARNING
        logger.log(level, 'OFREP %s %r: %s; using the default %r', kind, name, e, default)
        return default


def flag_is_active(flag_name, user=None, path=None, query=None, language=None, cookies=None, context=None,
                   default=None, timeout=None):
    """Whether the flag (of any library flagproxy reads) is on for ``user``
    (a user object or a primary key; None: anonymous) on a request to
    ``path`` with ``query``, ``language`` (Accept-Language) and ``cookies``;
    ``context`` (from request_context) supplies what is not given.

    On failure: ``default``, else WAFFLE_FLAG_DEFAULT."""
    return _is_active('flag', flag_name, 'WAFFLE_FLAG_DEFAULT', default, dict(
        user=user, path=path, query=query, language=language, cookies=cookies, context=context, timeout=timeout))


def switch_is_active(switch_name, default=None, timeout=None):
    """Whether the waffle switch is on. On failure: ``default``, else
    WAFFLE_SWITCH_DEFAULT."""
    return _is_active('switch', switch_name, 'WAFFLE_SWITCH_DEFAULT', default, dict(timeout=timeout))


def sample_is_active(sample_name, user=None, context=None, default=None, timeout=None):
    """flagproxy's answer for the waffle sample: a deterministic split of
    the sample and the user (waffle draws afresh on every call; see
    flagproxy's README). On failure: ``default``, else WAFFLE_SAMPLE_DEFAULT."""
    return _is_active('sample', sample_name, 'WAFFLE_SAMPLE_DEFAULT', default,
                      dict(user=user, context=context, timeout=timeout))
