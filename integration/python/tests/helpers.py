"""Building flags headers in Python, independently of the package's reader."""
import base64
import gzip
import hashlib
import hmac
import json

from django.test import override_settings


def payload(flags=None, switches=None, samples=None, sources=None, version='v1', state='ok', **extra):
    """A flags JSON object as flagproxy sends it."""
    obj = {'flags': flags or {}, 'switches': switches or {}, 'samples': samples or {}, 'sources': sources or {}}
    obj.update(extra)
    obj.update(version=version, state=state)
    return obj


def dumps(obj):
    """JSON as flagproxy writes it: compact, ASCII only."""
    return json.dumps(obj, separators=(',', ':'))


def inline_meta(obj):
    """request.META for the inline form of ``obj``."""
    return {'HTTP_X_FLAGPROXY_FLAGS': dumps(obj)}


def large_meta(obj, part_size=8000):
    """request.META for the large form of ``obj``: gzip, base64url, parts."""
    text = dumps(obj)
    encoded = base64.urlsafe_b64encode(gzip.compress(text.encode('ascii'))).rstrip(b'=').decode('ascii')
    parts = [encoded[i:i + part_size] for i in range(0, len(encoded), part_size)]
    pointer = {'encoding': 'gzip+base64url', 'parts': len(parts),
               'sha256': hashlib.sha256(text.encode('ascii')).hexdigest(),
               'version': obj.get('version'), 'state': obj.get('state')}
    meta = {'HTTP_X_FLAGPROXY_FLAGS': dumps(pointer)}
    for i, part in enumerate(parts, 1):
        meta[f'HTTP_X_FLAGPROXY_FLAGS_{i}'] = part
    return meta


def sign(meta, key, t):
    """Add the signature of ``meta``'s flags header made with ``key`` at ``t``."""
    value = meta['HTTP_X_FLAGPROXY_FLAGS']
    mac = hmac.new(key, f'{t}.{value}'.encode('ascii'), hashlib.sha256).hexdigest()
    return dict(meta, HTTP_X_FLAGPROXY_SIGNATURE=f't={t},v1={mac}')


#: The package's tests run with the waffle drop-in (tests/settings.py); this
#: runs a test with waffle's own models instead, where a missing header
#: gives every name its default without asking waffle.
without_dropin = override_settings(
    WAFFLE_FLAG_MODEL='waffle.Flag', WAFFLE_SWITCH_MODEL='waffle.Switch', WAFFLE_SAMPLE_MODEL='waffle.Sample')


def through_middleware(meta, view=None):
    """The request FlagproxyMiddleware leaves for a view, and the view's
    answer: ``view(request)`` returns a string, sent as the response body
    (default: empty)."""
    from django.http import HttpResponse
    from django.test import RequestFactory

    from flagproxy_django.middleware import FlagproxyMiddleware

    seen = {}

    def respond(request):
        seen['request'] = request
        return HttpResponse(view(request) if view else '')

    response = FlagproxyMiddleware(respond)(RequestFactory().get('/', **meta))
    return seen['request'], response.content.decode()
