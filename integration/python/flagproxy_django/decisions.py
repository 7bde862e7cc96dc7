"""The flag decisions of one request, and where code finds them.

FlagproxyMiddleware reads the X-Flagproxy-Flags header into a
:class:`Decisions` object, stores it on the request (``request.flagproxy``)
and makes it the *current* decisions for the duration of the request, so
that functions that take no request (``switch_is_active``) can reach it.

Values forced by :func:`flagproxy_django.testing.override_flags` are laid
over whatever the header said; this module keeps them too, so that every
reader sees the same answer.
"""
import contextvars
from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Optional, Tuple

from .reads import KINDS, Reads
from .signals import feature_defaulted

#: The states the header can report.
STATE_OK = 'ok'
STATE_STALE = 'stale'
STATE_UNAVAILABLE = 'unavailable'
STATES = (STATE_OK, STATE_STALE, STATE_UNAVAILABLE)
#: The header's "identity" when the visitor was recognised from flagproxy's
#: cache past its lifetime, because the database could not be read.
IDENTITY_STALE = 'stale'

#: The feature-flipper source of a decision taken from the database.
SOURCE_SITE = 'site'
#: The source of a value forced by override_flags.
SOURCE_TEST = 'test'


@dataclass(frozen=True)
class Decisions:
    """What flagproxy decided for one request.

    ``flags``, ``switches`` and ``samples`` map each name the header carried
    to True or False. ``sources`` maps a flag name to the request input that
    decided it (``"url"``, ``"session"``, ``"query"``, ``"header"``,
    ``"cookie"``, or ``"test"`` for a value forced by ``override_flags``);
    flags decided by the site-wide database rows are not listed.
    ``conflicts`` maps a flag name defined by more than one flag library to
    those libraries' names. ``version`` is the proxy's snapshot version and
    ``state`` is ``"ok"``, ``"stale"`` or ``"unavailable"``.

    ``error`` is None when the decisions come from a valid header with
    usable values; otherwise it says why there are none (missing or rejected
    header, state ``"unavailable"``), and every name takes its default.

    Treat the mappings as read-only.
    """

    flags: Mapping[str, bool] = field(default_factory=dict)
    switches: Mapping[str, bool] = field(default_factory=dict)
    samples: Mapping[str, bool] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    conflicts: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    version: str = ''
    state: str = STATE_UNAVAILABLE
    error: Optional[str] = None
    #: ``"stale"`` when flagproxy recognised the visitor from its cache past
    #: the cache's lifetime because the database could not be read (the
    #: flags of a logged-in user are still that user's), else ``""``.
    identity: str = ''
    #: True when no flagproxy header reached this code at all: outside a
    #: request, or for a request without the header (Django's test client,
    #: one that bypassed the proxy). The waffle drop-in then lets waffle's
    #: own code answer; a rejected or "unavailable" header is not absent.
    absent: bool = False
    #: The names read during the request (see :mod:`flagproxy_django.reads`);
    #: None records nothing.
    reads: Optional[Reads] = field(default=None, compare=False, repr=False)

    @classmethod
    def empty(cls, error, version='', absent=False):
        """Decisions without any value, for the reason ``error``."""
        return cls(version=version, state=STATE_UNAVAILABLE, error=error, absent=absent)

    def lookup(self, kind, name):
        """The value of ``name`` among ``kind`` (``"flags"``, ``"switches"``,
        ``"samples"``), or None when the header did not carry it.

        Every reader of a flag, switch or sample value goes through here, so
        that the read is recorded in :attr:`reads`.
        """
        value = getattr(self, kind).get(name)
        if self.reads is not None:
            self.reads.add(kind, name, value is not None)
        return value

    def lookup_all(self):
        """Record a read of every name the header carried (waffle's
        ``{% wafflejs %}`` evaluates them all)."""
        if self.reads is not None:
            for kind in KINDS:
                for name in getattr(self, kind):
                    self.reads.add(kind, name, True)


class FeatureDict(dict):
    """``request.features``: flag name -> True/False, like feature-flipper's.

    Looking up an unknown name with ``features[name]`` (which is what
    templates do) returns False and sends
    :data:`flagproxy_django.signals.feature_defaulted`. ``get()``,
    ``in`` and iteration see only the names the header carried. Looking a
    name up (``[]``, ``get()``, ``in``) records the read in ``reads``.
    """

    #: Where lookups are recorded; None records nothing.
    reads = None

    @classmethod
    def of(cls, decisions):
        """The features of ``decisions``, recording reads in its reads."""
        features = cls(decisions.flags)
        features.reads = decisions.reads
        return features

    def _note(self, name):
        if self.reads is not None:
            self.reads.add('flags', name, dict.__contains__(self, name))

    def __getitem__(self, name):
        self._note(name)
        return super().__getitem__(name)

    def get(self, name, default=None):
        self._note(name)
        return super().get(name, default)

    def __contains__(self, name):
        self._note(name)
        return super().__contains__(name)

    def __missing__(self, name):
        feature_defaulted.send(sender=FeatureDict, feature=name, features=self)
        return False


class FeaturesPanel:
    """``request.features_panel``, with feature-flipper's API.

    ``features`` maps each flag name to ``{'enabled': bool, 'source': str}``
    and ``sources`` lists ``(source, [(name, enabled), ...])`` layers in
    feature-flipper's order: ``"site"`` (decisions from the database), any
    other request input flagproxy reported (waffle's ``"cookie"``,
    ``"header"``, ``"query"``), ``"session"``, ``"url"``, and ``"test"``
    when override_flags forced values. The site layer holds only the flags
    the database decided: flagproxy does not send the database value of a
    flag that an override replaced.
    """

    def __init__(self, reads=None):
        self.features = {}
        self.sources = []
        self.reads = reads

    @classmethod
    def from_decisions(cls, decisions):
        """Build the panel for ``decisions``."""
        layers = {SOURCE_SITE: [], 'session': [], 'url': []}
        for name, enabled in decisions.flags.items():
            layers.setdefault(decisions.sources.get(name, SOURCE_SITE), []).append((name, enabled))
        fixed_last = ['session', 'url'] + ([SOURCE_TEST] if SOURCE_TEST in layers else [])
        others = sorted(set(layers) - {SOURCE_SITE} - set(fixed_last))
        panel = cls(decisions.reads)
        for source in [SOURCE_SITE] + others + fixed_last:
            panel.add(source, layers[source])
        return panel

    def add(self, source, pairs):
        """Append a layer; its pairs replace earlier states of their names."""
        pairs = list(pairs)
        self.sources.append((source, pairs))
        for name, enabled in pairs:
            self.features[name] = {'enabled': enabled, 'source': source}

    def enabled(self, name):
        """The state of ``name``; KeyError for a name the header lacks."""
        if self.reads is not None:
            self.reads.add('flags', name, name in self.features)
        return self.features[name]['enabled']

    def source(self, name):
        """Where the state of ``name`` came from; KeyError if unknown."""
        return self.features[name]['source']

    def states(self):
        """Flag name -> state, for every known name."""
        return {name: f['enabled'] for name, f in self.features.items()}


_NO_REQUEST = Decisions.empty('no request is being processed', absent=True)

_current = contextvars.ContextVar('flagproxy_decisions', default=_NO_REQUEST)
_current_request = contextvars.ContextVar('flagproxy_request', default=None)


def activate(decisions, request=None):
    """Make ``decisions`` (and ``request``) current; returns a token for :func:`deactivate`."""
    return _current.set(decisions), _current_request.set(request)


def deactivate(token):
    """Restore the decisions that were current before :func:`activate`."""
    decisions_token, request_token = token
    _current_request.reset(request_token)
    _current.reset(decisions_token)


def current_request():
    """The request being processed by FlagproxyMiddleware, or None."""
    return _current_request.get()


def current(request=None):
    """The decisions for ``request``, or for the request being processed.

    A request that went through FlagproxyMiddleware carries its decisions;
    for any other request (one built by RequestFactory, say), or with no
    request, the current request's decisions are used, and outside a
    request there are none. Values forced by override_flags are applied.
    """
    decisions = getattr(request, 'flagproxy', None)
    if not isinstance(decisions, Decisions):
        decisions = _current.get()
    return with_forced(decisions)


@dataclass(frozen=True)
class ForcedValues:
    """Values forced by one override_flags, by kind."""

    flags: Dict[str, bool]
    switches: Dict[str, bool]
    samples: Dict[str, bool]


# Active override_flags values, oldest first. Process-wide, like
# override_settings, so that threads serving a LiveServerTestCase see them.
_forced: List[ForcedValues] = []


def push_forced(values):
    """Lay ``values`` over every decision until :func:`pop_forced`."""
    _forced.append(values)


def pop_forced(values):
    """Remove the latest :func:`push_forced` of ``values``."""
    for i in range(len(_forced) - 1, -1, -1):
        if _forced[i] is values:
            del _forced[i]
            return


def forcing():
    """Whether any override_flags is active."""
    return bool(_forced)


def with_forced(decisions):
    """``decisions`` with the values of every active override_flags."""
    layers = tuple(_forced)
    if not layers:
        return decisions
    flags, switches, samples = dict(decisions.flags), dict(decisions.switches), dict(decisions.samples)
    sources = dict(decisions.sources)
    for layer in layers:
        flags.update(layer.flags)
        switches.update(layer.switches)
        samples.update(layer.samples)
        sources.update(dict.fromkeys(layer.flags, SOURCE_TEST))
    return replace(decisions, flags=flags, switches=switches, samples=samples, sources=sources)
