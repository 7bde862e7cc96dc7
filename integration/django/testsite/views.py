from django.contrib.auth import authenticate, login, logout
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

META_PREFIXES = ('HTTP_X_FLAGPROXY', 'HTTP_X_FORWARDED')
HEADER_PREFIX = 'x-flagproxy'


@csrf_exempt
def echo(request):
    """Return what Django saw of the request, after WSGI normalisation.

    "meta" holds the raw WSGI environ keys (HTTP_X_FLAGPROXY*, HTTP_X_FORWARDED*);
    "headers" holds Django's normalised header names starting with X-Flagproxy.
    """
    return JsonResponse({
        'path': request.get_full_path(),
        'method': request.method,
        'meta': {k: v for k, v in request.META.items() if k.startswith(META_PREFIXES)},
        'headers': {k: v for k, v in request.headers.items() if k.lower().startswith(HEADER_PREFIX)},
        'user': {
            'id': str(request.user.pk) if request.user.is_authenticated else None,
            'authenticated': request.user.is_authenticated,
        },
    }, json_dumps_params={'sort_keys': True})


@csrf_exempt
def login_view(request):
    """Log in with POSTed username and password (Django's own login())."""
    user = authenticate(request, username=request.POST.get('username'), password=request.POST.get('password'))
    if user is None:
        return JsonResponse({'ok': False}, status=403)
    login(request, user)
    return JsonResponse({'ok': True, 'id': str(user.pk)})


@csrf_exempt
def logout_view(request):
    """Log out (Django's own logout(), which flushes the session)."""
    logout(request)
    return JsonResponse({'ok': True})


@csrf_exempt
def feature_status_view(request):
    """Store a feature-flipper session entry, as code on the site might:
    request.session['feature_status_<name>'] = <value>."""
    request.session['feature_status_' + request.GET['name']] = request.GET.get('value', 'enabled')
    return JsonResponse({'ok': True})
