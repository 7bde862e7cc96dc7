"""Signals sent by flagproxy_django."""
from django.dispatch import Signal

#: Sent when ``request.features[name]`` defaults an unknown name to False,
#: like django-feature-flipper's signal of the same name, with the keyword
#: arguments ``feature`` (the name) and ``features`` (the FeatureDict).
#: ``sender`` is the FeatureDict class (feature-flipper sent the instance,
#: which cannot serve as a sender: a dict is not hashable).
feature_defaulted = Signal()
