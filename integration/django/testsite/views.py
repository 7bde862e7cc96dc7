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
    }, json_dumps_params={'sort_keys': True})
