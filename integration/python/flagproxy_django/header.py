"""Reading flagproxy's X-Flagproxy-Flags header (no Django request needed).

The contract (flagproxy's ``proxy`` package documentation) in short:

* ``X-Flagproxy-Flags`` holds one ASCII JSON object with the members
  ``flags``, ``switches``, ``samples`` (name -> true/false), ``sources``
  (flag name -> request input), optionally ``conflicts`` (flag name -> list
  of library names), ``version`` (string), ``state`` (``"ok"``,
  ``"stale"`` or ``"unavailable"``) and, only when the visitor was
  recognised from flagproxy's cache during a database outage,
  ``identity`` (``"stale"``).
* A value too large for one header is sent as the pointer object
  ``{"encoding":"gzip+base64url","parts":N,"sha256":"<hex>","version":…,
  "state":…}`` with the gzip-compressed JSON, in unpadded base64url, cut
  into ``X-Flagproxy-Flags-1`` … ``X-Flagproxy-Flags-N`` (N at most 16);
  ``sha256`` is the digest of the uncompressed JSON.
* With a signing key, ``X-Flagproxy-Signature: t=<unix>,v1=<hex>`` where
  hex is HMAC-SHA256(key, ``"<t>.<X-Flagproxy-Flags value>"``). In the large
  form the pointer object is what is signed; its digest covers the parts.

:func:`read_flags` checks all of this (flagproxy's Go reader,
``proxy.Decode``, makes the same checks except the signature's) and raises
:class:`HeaderError` saying why a header is not accepted.
"""
import base64
import gzip
import hashlib
import hmac
import io
import json
import re
import time
import zlib

from .decisions import IDENTITY_STALE, STATES, Decisions

#: The request.META keys of the headers.
FLAGS_META = 'HTTP_X_FLAGPROXY_FLAGS'
SIGNATURE_META = 'HTTP_X_FLAGPROXY_SIGNATURE'

#: The encoding named by the pointer object of a large value.
ENCODING = 'gzip+base64url'
#: The most parts a large value may have.
MAX_PARTS = 16
#: The largest decompressed JSON accepted.
MAX_DECODED_SIZE = 16 << 20

_HEX_SHA256 = re.compile(r'[0-9a-fA-F]{64}')
_HEX_HMAC = re.compile(r'[0-9a-f]{64}')
_BASE64URL = re.compile(r'[A-Za-z0-9_-]*')
_UNIX_TIME = re.compile(r'[0-9]{1,15}')
_EXCERPT = 60


class HeaderError(ValueError):
    """The flags header is missing or not acceptable; the message says why."""


class MissingHeader(HeaderError):
    """The request has no X-Flagproxy-Flags header at all."""


def read_flags(meta, signing_keys=(), max_age=300, now=None):
    """Read the flags header from a WSGI environ / ``request.META``.

    ``signing_keys`` (bytes) turn on signature checking: the signature must
    be present, made with one of the keys, and at most ``max_age`` seconds
    away from ``now`` (default: the current time) in either direction.
    Returns :class:`~flagproxy_django.decisions.Decisions` exactly as the
    header says, whatever its state; raises :class:`HeaderError`.
    """
    value = meta.get(FLAGS_META)
    if value is None:
        raise MissingHeader('the request has no X-Flagproxy-Flags header (did it bypass flagproxy?)')
    if not value.isascii():
        raise HeaderError('X-Flagproxy-Flags is not ASCII')
    if signing_keys:
        verify_signature(value, meta.get(SIGNATURE_META), signing_keys, max_age,
                         time.time() if now is None else now)
    obj = _load_object(value, 'X-Flagproxy-Flags')
    if 'encoding' not in obj:
        return _decisions(obj)
    pointer = _pointer(obj)
    decisions = _decisions(_load_object(_join_parts(meta, pointer), 'the joined parts'))
    if (decisions.version, decisions.state) != (pointer['version'], pointer['state']):
        raise HeaderError('the version or state of the joined parts differs from the pointer object')
    return decisions


def verify_signature(value, signature, keys, max_age, now):
    """Check ``signature`` (an X-Flagproxy-Signature value) of ``value``.

    Fields other than ``t`` and ``v1`` are ignored; the signature is good
    when any ``v1`` is the HMAC of any key. Raises :class:`HeaderError`.
    """
    if not signature:
        raise HeaderError('X-Flagproxy-Signature is missing, and FLAGPROXY_SIGNING_KEY requires it')
    stamp, macs = None, []
    for item in signature.split(','):
        name, sep, field_value = item.partition('=')
        if not sep:
            raise HeaderError('X-Flagproxy-Signature is not of the form t=<unix>,v1=<hex>')
        if name == 't':
            if stamp is not None:
                raise HeaderError('X-Flagproxy-Signature has more than one t')
            stamp = field_value
        elif name == 'v1':
            macs.append(field_value)
    if stamp is None or not _UNIX_TIME.fullmatch(stamp):
        raise HeaderError('X-Flagproxy-Signature has no valid t=<unix seconds>')
    if not macs or not all(_HEX_HMAC.fullmatch(m) for m in macs):
        raise HeaderError('X-Flagproxy-Signature has no v1 of 64 lower-case hex digits')
    message = (stamp + '.' + value).encode('ascii')
    expected = [hmac.new(key, message, hashlib.sha256).hexdigest() for key in keys]
    if not any(hmac.compare_digest(e, m) for e in expected for m in macs):
        raise HeaderError('X-Flagproxy-Signature does not match (is FLAGPROXY_SIGNING_KEY the proxy\'s '
                          '--signing-key?)')
    age = now - int(stamp)
    if age > max_age:
        raise HeaderError(f'X-Flagproxy-Signature is {age:.0f} s old, more than '
                          f'FLAGPROXY_SIGNATURE_MAX_AGE ({max_age} s)')
    if -age > max_age:
        raise HeaderError(f'X-Flagproxy-Signature is {-age:.0f} s in the future, more than '
                          f'FLAGPROXY_SIGNATURE_MAX_AGE ({max_age} s): are the clocks in sync?')


def _reject_constant(name):
    raise ValueError(f'{name} is not JSON')


def _load_object(text, what):
    """Parse ``text`` as one JSON object (RFC 8259: no NaN or Infinity)."""
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise HeaderError(f'{what} is not valid JSON ({e}); it starts {excerpt(text)}') from None
    if not isinstance(obj, dict):
        raise HeaderError(f'{what} is JSON but not an object; it starts {excerpt(text)}')
    return obj


def excerpt(text):
    """The start of ``text`` for a log message, with its length."""
    if len(text) <= _EXCERPT:
        return repr(text)
    return f'{text[:_EXCERPT]!r}… ({len(text)} characters)'


def _pointer(obj):
    """Check the pointer object of a large value."""
    if obj['encoding'] != ENCODING:
        raise HeaderError(f'unknown encoding {excerpt(str(obj["encoding"]))}, want {ENCODING!r}')
    parts = obj.get('parts')
    if not _is_int(parts) or not 1 <= parts <= MAX_PARTS:
        raise HeaderError(f'the pointer object must name 1 to {MAX_PARTS} parts, not {excerpt(str(parts))}')
    digest = obj.get('sha256')
    if not isinstance(digest, str) or not _HEX_SHA256.fullmatch(digest):
        raise HeaderError('the pointer object has no valid sha256')
    version, state = obj.get('version', ''), obj.get('state', '')
    if not isinstance(version, str) or not isinstance(state, str):
        raise HeaderError('the pointer object\'s version and state must be strings')
    return {'parts': parts, 'sha256': digest.lower(), 'version': version, 'state': state}


def _join_parts(meta, pointer):
    """Join, decode, decompress and check the parts of a large value."""
    parts = pointer['parts']
    pieces = []
    for i in range(1, parts + 1):
        piece = meta.get(f'{FLAGS_META}_{i}')
        if not piece:
            raise HeaderError(f'X-Flagproxy-Flags-{i} of {parts} parts is missing or empty')
        pieces.append(piece)
    text = ''.join(pieces)
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise HeaderError('the parts are not unpadded base64url')
    zipped = base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))
    if base64.urlsafe_b64encode(zipped).rstrip(b'=') != text.encode('ascii'):
        raise HeaderError('the parts are not canonical base64url (stray bits at the end)')
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(zipped)) as f:
            raw = f.read(MAX_DECODED_SIZE + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise HeaderError(f'the parts are not valid gzip ({e})') from None
    if len(raw) > MAX_DECODED_SIZE:
        raise HeaderError(f'the decompressed value is larger than {MAX_DECODED_SIZE} bytes')
    if hashlib.sha256(raw).hexdigest() != pointer['sha256']:
        raise HeaderError('the sha256 of the joined parts does not match the pointer object')
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError:
        raise HeaderError('the joined parts are not UTF-8') from None


def _decisions(obj):
    """Check the members of the flags JSON and build Decisions."""
    maps = {}
    for member in ('flags', 'switches', 'samples'):
        value = obj.get(member)
        if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
            raise HeaderError(f'"{member}" must be an object of true/false values')
        maps[member] = value
    sources = obj.get('sources')
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise HeaderError('"sources" must be an object of strings')
    conflicts = obj.get('conflicts')
    if conflicts is None:
        conflicts = {}
    elif not isinstance(conflicts, dict) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in conflicts.values()):
        raise HeaderError('"conflicts" must be an object of lists of strings')
    version = obj.get('version', '')
    if not isinstance(version, str):
        raise HeaderError('"version" must be a string')
    state = obj.get('state')
    if state not in STATES:
        raise HeaderError(f'"state" must be one of {", ".join(STATES)}, not {excerpt(str(state))}')
    identity = obj.get('identity', '')
    if identity not in ('', IDENTITY_STALE):
        raise HeaderError(f'"identity" must be absent or "{IDENTITY_STALE}", not {excerpt(str(identity))}')
    return Decisions(
        flags=maps['flags'], switches=maps['switches'], samples=maps['samples'], sources=sources,
        conflicts={name: tuple(libs) for name, libs in conflicts.items()}, version=version, state=state,
        identity=identity)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)
