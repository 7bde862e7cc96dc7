"""Template context processor, like django-feature-flipper's."""
from .decisions import FeatureDict, current


def features(request):
    """Add ``features``: ``request.features`` (flag name -> True/False).

    For a request that did not go through FlagproxyMiddleware (one built by
    RequestFactory, say) it is built from the current decisions, so values
    forced by override_flags still show.
    """
    found = getattr(request, 'features', None)
    if not isinstance(found, FeatureDict):
        found = FeatureDict.of(current(request))
    return {'features': found}
