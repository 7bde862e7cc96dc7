"""Shadow mode: compare each answer from the header with waffle's own.

With ``FLAGPROXY_SHADOW = True`` every flag, switch and sample answered
from flagproxy's header (by the waffle drop-in or flagproxy_django.waffle)
is also evaluated the old way, in process, by django-waffle's own code on
its own cache and rows, read-only: no cookie is set, no row is created
(WAFFLE_CREATE_MISSING_* is not applied), the request is not touched. When
the two disagree, the mismatch is counted (:func:`mismatches`) and logged
at WARNING on the logger ``flagproxy.shadow`` as one line that ends with a
JSON object::

    flagproxy shadow mismatch {"kind": "flags", "name": "checkout", "header": true,
    "waffle": false, "source": "site", "version": "…", "state": "ok",
    "user": "42:alice", "path": "/cart/", "time": "2025-…"}

``manage.py flagproxy_shadow_report`` summarizes such lines from a log
file. ``FLAGPROXY_SHADOW_LOG = '/path/file'`` makes the app append them to
that file itself (any handler on the logger works too).

Expected differences are not compared:

* a flag the proxy decided from something waffle does not know:
  flagproxy's URL and session overrides (source ``url``, ``session``), a
  value forced by a test;
* a fresh random roll of a percentage: the proxy's (source ``roll``) and
  the one waffle would make (no ``dwf_`` cookie yet) are independent draws.
  When the proxy rolled but waffle's rules decide the flag before its
  percentage (or the other way round), that is a real disagreement and is
  reported, with the source ``roll``;
* a sample with a percentage strictly between 0 and 100 (waffle rolls
  again on every call).

Nothing is compared when the header was rejected or said "unavailable"
(the middleware logs that) or when no header reached the code (waffle's
own code answered alone). With FLAGPROXY_SHADOW off the cost is one
settings lookup per read.
"""
import json
import logging
import threading
from collections import Counter
from datetime import datetime, timezone

from django.conf import settings

from .decisions import SOURCE_SITE, SOURCE_TEST, current_request, forcing

logger = logging.getLogger('flagproxy.shadow')

#: What a mismatch line starts with; the report looks for it.
MARKER = 'flagproxy shadow mismatch '

#: Sources of decisions that waffle's own code cannot reproduce. A roll
#: (source "roll") is compared unless waffle would roll too.
EXPECTED_SOURCES = frozenset({'url', 'session', SOURCE_TEST})

_lock = threading.Lock()
_counts = Counter()


def mismatches():
    """Mismatches counted in this process: {(kind, name): count}."""
    with _lock:
        return dict(_counts)


def reset():
    """Forget the counted mismatches."""
    with _lock:
        _counts.clear()


def compare(decisions, kind, name, header_value, request=None):
    """Compare the header's ``header_value`` with waffle's own answer; never raises."""
    source = decisions.sources.get(name, SOURCE_SITE) if kind == 'flags' else SOURCE_SITE
    if decisions.error is not None or forcing() or source in EXPECTED_SOURCES:
        return
    request = request if request is not None else current_request()
    try:
        old = waffle_answer(kind, name, request)
    except Exception:  # shadow mode must never break a page
        logger.exception('shadow mode could not evaluate %s %r with waffle', kind, name)
        return
    if old is None or bool(old) == header_value:
        return
    with _lock:
        _counts[(kind, name)] += 1
    logger.warning('%s%s', MARKER, json.dumps({
        'kind': kind, 'name': name, 'header': header_value, 'waffle': bool(old), 'source': source,
        'version': decisions.version, 'state': decisions.state, 'user': _user(request),
        'path': getattr(request, 'path', ''), 'time': datetime.now(timezone.utc).isoformat(timespec='seconds'),
    }, sort_keys=True))


def waffle_answer(kind, name, request):
    """What django-waffle's own code answers, read-only; None when it
    would roll a die (or has no request to judge a flag by)."""
    from waffle import get_waffle_flag_model, get_waffle_sample_model, get_waffle_switch_model
    from waffle.models import AbstractBaseFlag, BaseModel
    from waffle.utils import get_setting

    model = {'flags': get_waffle_flag_model, 'switches': get_waffle_switch_model,
             'samples': get_waffle_sample_model}[kind]()
    row = BaseModel.get.__func__(model, name)  # waffle's cached lookup, never the header
    if not row.pk:
        return bool(get_setting({'flags': 'FLAG_DEFAULT', 'switches': 'SWITCH_DEFAULT',
                                 'samples': 'SAMPLE_DEFAULT'}[kind]))
    if kind == 'switches':
        return bool(row.active)
    if kind == 'samples':
        return True if row.percent >= 100 else False if row.percent <= 0 else None
    if request is None:
        return None
    return AbstractBaseFlag.is_active(row, ReadOnlyRequest(request), read_only=True)


class ReadOnlyRequest:
    """What waffle's Flag.is_active reads of a request, on an object of its
    own: what waffle writes on it (``waffles``, ``waffle_tests``, which its
    middleware would turn into cookies) never reaches the real request."""

    def __init__(self, request):
        self.GET = request.GET
        self.COOKIES = request.COOKIES
        self.headers = request.headers
        for attr in ('user', 'LANGUAGE_CODE'):
            if hasattr(request, attr):
                setattr(self, attr, getattr(request, attr))


def _user(request):
    user = getattr(request, 'user', None)
    if user is None or not getattr(user, 'is_authenticated', False):
        return 'anonymous'
    return f'{user.pk}:{user.get_username()}'


class ShadowLogHandler(logging.FileHandler):
    """Appends the shadow mismatch lines to FLAGPROXY_SHADOW_LOG."""

    def __init__(self, path):
        super().__init__(path, delay=True, encoding='utf-8')
        self.setFormatter(logging.Formatter('%(message)s'))


def install_log_file():
    """Attach a ShadowLogHandler for FLAGPROXY_SHADOW_LOG, once (at app start)."""
    path = getattr(settings, 'FLAGPROXY_SHADOW_LOG', None)
    if not path or any(isinstance(h, ShadowLogHandler) for h in logger.handlers):
        return
    logger.addHandler(ShadowLogHandler(path))
