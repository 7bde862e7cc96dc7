"""The doctor's probe: ``manage.py flagproxy_doctor`` asks the site, through
flagproxy, what header the request reached Django with.

The command sends an ordinary request through the proxy with the header
``Flagproxy-Doctor: <token>`` (not ``X-Flagproxy-*``, which flagproxy
deletes). The token is :func:`make_token`'s: a nonce signed with the site's
SECRET_KEY, valid for :data:`MAX_AGE` seconds, so only someone holding the
key can make FlagproxyMiddleware answer. It answers with :func:`report`:
whether the flags header was there, whether it was accepted (the reason
if not), its state and snapshot version, whether a signature came with it
and whether this site checks one. No flag value, cookie or setting is in
the answer. Any other value of the header is ignored: the request is served
as usual.
"""
import secrets

from django.core import signing
from django.http import JsonResponse

from . import conf
from .header import FLAGS_META, SIGNATURE_META

#: The request.META key of the probe header.
PROBE_META = 'HTTP_FLAGPROXY_DOCTOR'
#: The probe header's name.
PROBE_HEADER = 'Flagproxy-Doctor'
#: How long a token is good for, in seconds.
MAX_AGE = 60
#: The longest token read (a real one is about 80 characters).
MAX_TOKEN = 200

_SALT = 'flagproxy_django.probe'


def make_token():
    """A fresh token for the probe header."""
    return signing.TimestampSigner(salt=_SALT).sign(secrets.token_urlsafe(16))


def is_probe(request):
    """Whether the request carries a valid, unexpired probe token."""
    token = request.META.get(PROBE_META)
    if not token or len(token) > MAX_TOKEN:
        return False
    try:
        signing.TimestampSigner(salt=_SALT).unsign(token, max_age=MAX_AGE)
    except signing.BadSignature:
        return False
    return True


def report(request, decisions):
    """The probe's answer for a request read as ``decisions``."""
    try:
        checking = bool(conf.signing_keys())
    except Exception:  # reported by the checks; say "not checking" here
        checking = False
    response = JsonResponse({
        'flagproxy_probe': 1,
        'header': FLAGS_META in request.META,
        'signature_header': SIGNATURE_META in request.META,
        'signature_checked': checking,
        'error': decisions.error,
        'state': decisions.state,
        'version': decisions.version,
    })
    response['Cache-Control'] = 'no-store'
    return response
