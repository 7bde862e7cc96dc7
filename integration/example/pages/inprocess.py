"""How the site evaluated its feature-flipper features and FeatureFlags before
flagproxy: in this process, with database queries on every request.

Used only with EXAMPLE_FLAGS=waffle, next to waffle's own middleware and
tags. django-feature-flipper (2010) is Python 2 code, so this is a small
Python 3 port of its middleware and context processor, with the site's
FeatureFlag model plugged in the way feature-flipper's FeatureProvider
plugins were. With EXAMPLE_FLAGS=flagproxy none of this runs: flagproxy
evaluates the same tables by the same rules and flagproxy_django's
middleware reads the result from the X-Flagproxy-Flags header.
"""
import hashlib
import re

from django.conf import settings

from featureflipper.models import Feature
from flags.models import FeatureFlag

FLIP_PERMISSION = 'featureflipper.can_flip_with_url'
# Feature names that can be flipped: ASCII letters, digits and "_".
FEATURE_STATUS = re.compile(r'^feature_status_([A-Za-z0-9_]+)$')
ENABLE = re.compile(r'^enable_([A-Za-z0-9_]+)$')
SESSION_ENABLE = re.compile(r'^session_enable_([A-Za-z0-9_]+)$')


class FeatureDict(dict):
    """request.features: a dict whose unknown names are False."""

    def __missing__(self, name):
        return False


class FeaturesPanel:
    """request.features_panel: each feature's state and the layer it came from."""

    def __init__(self):
        self.features = {}  # name -> {'enabled': bool, 'source': str}
        self.sources = []   # (source, [(name, enabled), ...]) in the order added

    def add(self, source, pairs):
        pairs = list(pairs)
        self.sources.append((source, pairs))
        for name, enabled in pairs:  # a later layer wins
            self.features[name] = {'enabled': enabled, 'source': source}

    def enabled(self, name):
        return self.features[name]['enabled']

    def source(self, name):
        return self.features[name]['source']

    def states(self):
        return {name: f['enabled'] for name, f in self.features.items()}


def feature_flag_is_enabled(flag, user):
    """The FeatureFlag model's rule: allowed users, then a deterministic
    rollout bucket (sha256 of "key:user_pk" modulo 100)."""
    if not flag.enabled:
        return False
    if user.is_authenticated and flag.allowed_users.filter(pk=user.pk).exists():
        return True
    if flag.rollout_percent >= 100:
        return True
    if not user.is_authenticated:
        return False
    bucket = int(hashlib.sha256(f'{flag.key}:{user.pk}'.encode()).hexdigest(), 16) % 100
    return bucket < flag.rollout_percent


class FeatureFlipperMiddleware:
    """Sets request.features and request.features_panel, layer by layer:
    the featureflipper_feature table and the FeatureFlag model ("site"),
    the visitor's session ("session") and the URL ("url").

    ?enable_x (this request), ?session_enable_x and ?session_clear_features
    (stored in the Django session) count only for visitors with the
    featureflipper.can_flip_with_url permission, as flagproxy promises; the
    2010 code let anyone use ?enable_x. Place it after the session and
    authentication middleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        panel = FeaturesPanel()
        panel.add('site', Feature.objects.values_list('name', 'enabled'))
        # The FeatureFlag model, plugged in as feature-flipper's
        # FeatureProvider plugins were. Its source is "site" too, as
        # flagproxy reports every decision taken from the database.
        panel.add('site', [(f.key, feature_flag_is_enabled(f, request.user))
                           for f in FeatureFlag.objects.all()])

        may_flip = (getattr(settings, 'FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING', False)
                    or request.user.has_perm(FLIP_PERMISSION))
        if may_flip:
            if 'session_clear_features' in request.GET:
                for key in [k for k in request.session.keys() if FEATURE_STATUS.match(k)]:
                    del request.session[key]
            for key in request.GET:
                m = SESSION_ENABLE.match(key)
                if m:
                    request.session['feature_status_' + m.group(1)] = 'enabled'

        panel.add('session', [(m.group(1), request.session[key] == 'enabled')
                              for key in list(request.session.keys())
                              for m in [FEATURE_STATUS.match(key)] if m])
        if may_flip:
            panel.add('url', [(m.group(1), True) for key in request.GET
                              for m in [ENABLE.match(key)] if m])

        request.features = FeatureDict(panel.states())
        request.features_panel = panel
        return self.get_response(request)


def features(request):
    """Context processor: {{ features.x }} and the {% feature %} tag."""
    return {'features': getattr(request, 'features', FeatureDict())}
