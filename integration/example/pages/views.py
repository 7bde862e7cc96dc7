from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render

from pages.flags import flag_is_active, switch_is_active, waffle_flag

# Every name this example uses, by kind (the /flags/ page lists them).
WAFFLE_FLAGS = ('awesome_text', 'staff_tools', 'reviews', 'fresh_look')
SWITCHES = ('announcement',)
# request.features holds feature-flipper features and FeatureFlag keys.
FEATURES = ('search', 'newsletter', 'new_pricing')


def home(request):
    """The page: every kind of flag, shown or hidden (pages/home.html)."""
    # A FeatureFlag checked in Python. request.features answers False for
    # names nobody defined, like feature-flipper's did.
    pricing = 'new' if request.features['new_pricing'] else 'classic'
    return render(request, 'pages/home.html', {'pricing': pricing})


@waffle_flag('staff_tools')
def staff_tools(request):
    """Only reachable while the staff_tools flag is on for the visitor;
    everyone else gets a 404, as with waffle's decorator."""
    return render(request, 'pages/staff_tools.html')


def flags(request):
    """What this request saw, as JSON: the decision for every name above
    and, for features, where it came from (site, session, url, ...)."""
    sources = {}
    for name in FEATURES:
        try:
            sources[name] = request.features_panel.source(name)
        except KeyError:  # not defined anywhere
            pass
    return JsonResponse({
        'mode': settings.EXAMPLE_FLAGS,
        'user': request.user.get_username(),
        'flags': {name: flag_is_active(request, name) for name in WAFFLE_FLAGS},
        'switches': {name: switch_is_active(name) for name in SWITCHES},
        'features': {name: request.features[name] for name in FEATURES},
        'sources': sources,
    }, json_dumps_params={'indent': 2, 'sort_keys': True})
