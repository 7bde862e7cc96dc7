import json

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


@csrf_exempt
def waffle_view(request):
    """Ask django-waffle itself: evaluate every flag, switch and sample in the
    database in-process, as waffle's /wafflejs view does, and report the
    results, the cookies waffle's middleware would write, and what flagproxy
    sent. The header X-Diff-Missing (a JSON list) names flags to evaluate
    that have no row.

    The cookies are rendered one by one by WaffleMiddleware itself, so that a
    name Python refuses shows up as an error for that cookie alone; they are
    then withheld from the real response, which carries flagproxy's.
    """
    from http.cookies import CookieError

    from django.http import HttpResponse
    from waffle import (flag_is_active, get_waffle_flag_model, get_waffle_sample_model,
                        get_waffle_switch_model, sample_is_active, switch_is_active)
    from waffle.middleware import WaffleMiddleware
    from waffle.utils import get_setting

    names = sorted(get_waffle_flag_model().objects.values_list('name', flat=True))
    names += json.loads(request.headers.get('X-Diff-Missing') or '[]')
    flags = {name: bool(flag_is_active(request, name)) for name in names}
    switches = {name: switch_is_active(name)
                for name in get_waffle_switch_model().objects.values_list('name', flat=True)}
    samples = {name: sample_is_active(name)
               for name in get_waffle_sample_model().objects.values_list('name', flat=True)}

    waffles = getattr(request, 'waffles', {})
    tests = getattr(request, 'waffle_tests', {})
    rolled = sorted(name for name in waffles if get_setting('COOKIE') % name not in request.COOKIES)
    cookies = {}
    middleware = WaffleMiddleware(lambda r: HttpResponse())
    for attr, items in (('waffles', waffles), ('waffle_tests', tests)):
        for name, value in items.items():
            for a in ('waffles', 'waffle_tests'):
                if hasattr(request, a):
                    delattr(request, a)
            setattr(request, attr, {name: value})
            response = HttpResponse()
            try:
                middleware.process_response(request, response)
            except CookieError as e:
                cookies[f'{attr}:{name}'] = f'error: {e}'
                continue
            for key, morsel in response.cookies.items():
                cookies[key] = morsel.OutputString()
    for a in ('waffles', 'waffle_tests'):
        if hasattr(request, a):
            delattr(request, a)
    return JsonResponse({
        'flags': flags,
        'switches': switches,
        'samples': samples,
        'rolled': rolled,
        'cookies': cookies,
        'language': getattr(request, 'LANGUAGE_CODE', None),
        'user': str(request.user.pk) if request.user.is_authenticated else None,
        'meta': {k: v for k, v in request.META.items() if k.startswith('HTTP_X_FLAGPROXY')},
    })


@csrf_exempt
def session_view(request):
    """Log in the user with primary key ?user=, active or not, without a
    password (a test's shortcut to a real Django session)."""
    from django.contrib.auth import get_user_model
    user = get_user_model().objects.get(pk=request.GET['user'])
    login(request, user, backend='django.contrib.auth.backends.ModelBackend')
    return JsonResponse({'ok': True, 'id': str(user.pk)})


@csrf_exempt
def djflags_view(request, name):
    """Ask django-flags' API, as flagproxy_django.djflags answers it from the
    header: flag_state, flag_enabled and flag_disabled of ``name`` for this
    request, flag_state without a request (the current request's decisions),
    and the decisions' version, state and error.

    The site runs waffle's middleware, not flagproxy's, so this view alone
    runs behind FlagproxyMiddleware, which reads the header as a site using
    flagproxy_django would.
    """
    from flagproxy_django import djflags
    from flagproxy_django.middleware import FlagproxyMiddleware

    def answer(request):
        decisions = request.flagproxy
        return JsonResponse({
            'flag_state': djflags.flag_state(name, request),
            'flag_enabled': djflags.flag_enabled(name, request=request),
            'flag_disabled': djflags.flag_disabled(name, request=request),
            'flag_state_current': djflags.flag_state(name),
            'version': decisions.version,
            'state': decisions.state,
            'error': decisions.error,
            'user': str(request.user.pk) if request.user.is_authenticated else None,
        })

    return FlagproxyMiddleware(answer)(request)


@csrf_exempt
def bigpage_view(request):
    """A page of ?size= bytes (default 256 KiB, at most 64 MiB), for clients
    that disconnect in the middle of a response or never read it."""
    from django.http import HttpResponse
    size = min(int(request.GET.get('size', 256 * 1024)), 64 << 20)
    return HttpResponse(b'x' * size, content_type='application/octet-stream')


@csrf_exempt
def upload_view(request):
    """Read the whole request body (as a view handling a POST does) and
    report its length and SHA-256."""
    import hashlib
    body = request.body
    return JsonResponse({'length': len(body), 'sha256': hashlib.sha256(body).hexdigest()})


@csrf_exempt
def meta_view(request):
    """Every HTTP_* key of request.META, as the WSGI server passed it."""
    return JsonResponse({k: v for k, v in request.META.items() if k.startswith('HTTP_')},
                        json_dumps_params={'sort_keys': True})


@csrf_exempt
def reads_view(request):
    """Read the flags named by ?flags=a,b through flagproxy_django's waffle
    API, behind FlagproxyMiddleware (the site runs waffle's), which reports
    the names read on the response in X-Flagproxy-Reads. Answers with the
    values read and the X-Flagproxy-* request headers Django saw."""
    from flagproxy_django.middleware import FlagproxyMiddleware
    from flagproxy_django.waffle import flag_is_active

    def answer(request):
        names = [n for n in request.GET.get('flags', '').split(',') if n]
        return JsonResponse({
            'flags': {name: flag_is_active(request, name) for name in names},
            'meta': {k: v for k, v in request.META.items() if k.startswith(META_PREFIXES)},
            'error': request.flagproxy.error,
        })

    return FlagproxyMiddleware(answer)(request)
