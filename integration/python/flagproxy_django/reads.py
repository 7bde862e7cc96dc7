"""Which names the app read while handling a request, reported to flagproxy.

Every lookup of a flag, switch or sample goes through
:meth:`flagproxy_django.decisions.Decisions.lookup`, which notes the name
in the request's :class:`Reads`. FlagproxyMiddleware then puts them on the
response in ``X-Flagproxy-Reads`` (see :func:`encode`), which flagproxy
reads and removes before the client sees the response. flagproxy keeps,
per name, when it was last read, lists the names read that no source
defines, and writes waffle's ``dwf_`` cookies only for the flags read.

The value is one ASCII JSON object, without line breaks::

    {"flags":["beta","new_ui"],"switches":["maintenance"],"samples":[],
     "missing":{"flags":["ghost"],"switches":[],"samples":[]}}

``flags``, ``switches`` and ``samples`` list the names read that the
request's X-Flagproxy-Flags header carried, ``missing`` those it did not
carry (each name read is in exactly one of the two). ``"truncated":true``
is added when names were left out to keep the value within
:data:`MAX_VALUE_SIZE` bytes. With FLAGPROXY_SIGNING_KEY set,
``X-Flagproxy-Reads-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`` carries
HMAC-SHA256(key, ``"<t>.<value>"``), one ``v1`` per key, exactly as
flagproxy signs X-Flagproxy-Flags.
"""
import hashlib
import hmac
import json
import time

#: The response headers.
READS_HEADER = 'X-Flagproxy-Reads'
READS_SIGNATURE_HEADER = 'X-Flagproxy-Reads-Signature'
#: The kinds of names, in the order they are written.
KINDS = ('flags', 'switches', 'samples')
#: The longest header value written; names beyond it are left out.
MAX_VALUE_SIZE = 8000
#: Names longer than this are not recorded (no library allows them).
MAX_NAME_LENGTH = 255
#: The most names one request records, whatever their size.
MAX_NAMES = 1000


class Reads:
    """The names read during one request, by kind, in the order first read.

    Each name maps to whether the header carried it. At most
    :data:`MAX_NAMES` names are kept; later ones set :attr:`truncated`.
    """

    def __init__(self):
        self.names = {kind: {} for kind in KINDS}
        self.truncated = False
        self._count = 0

    def add(self, kind, name, carried):
        """Note that ``name`` of ``kind`` was read; ``carried``: the header had it."""
        seen = self.names[kind]
        if name in seen or not isinstance(name, str):
            return
        if len(name) > MAX_NAME_LENGTH or self._count >= MAX_NAMES:
            self.truncated = True
            return
        seen[name] = carried
        self._count += 1

    def __bool__(self):
        return self._count > 0


def encode(reads):
    """The X-Flagproxy-Reads value for ``reads``, at most MAX_VALUE_SIZE bytes."""
    read = {kind: [] for kind in KINDS}
    missing = {kind: [] for kind in KINDS}
    truncated = reads.truncated
    # The skeleton with every list empty, and "truncated" in case it is needed.
    size = len(_dumps({**read, 'missing': missing, 'truncated': True}))
    for kind in KINDS:
        for name, carried in reads.names[kind].items():
            cost = len(_dumps(name)) + 1  # the name and a comma
            if size + cost > MAX_VALUE_SIZE:
                truncated = True
                continue
            size += cost
            (read if carried else missing)[kind].append(name)
    value = {**read, 'missing': missing}
    if truncated:
        value['truncated'] = True
    return _dumps(value)


def sign(value, keys, now=None):
    """The X-Flagproxy-Reads-Signature of ``value``: one v1 per key."""
    stamp = str(int(time.time() if now is None else now))
    message = (stamp + '.' + value).encode('ascii')
    macs = (hmac.new(key, message, hashlib.sha256).hexdigest() for key in keys)
    return 't=' + stamp + ''.join(',v1=' + mac for mac in macs)


def report(response, reads, keys):
    """Set the reads headers on ``response`` (signed when ``keys``)."""
    value = encode(reads)
    response[READS_HEADER] = value
    if keys:
        response[READS_SIGNATURE_HEADER] = sign(value, keys)


def _dumps(obj):
    # ensure_ascii: the value is ASCII whatever the names are.
    return json.dumps(obj, separators=(',', ':'), ensure_ascii=True)
