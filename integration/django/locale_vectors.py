"""Write engine/testdata/locale.json: request.LANGUAGE_CODE as Django's own
LocaleMiddleware sets it, for a grid of paths, language cookies and
Accept-Language values under several settings.

usage: /usr/bin/python3 integration/django/locale_vectors.py [OUTFILE]

Each configuration runs in a fresh interpreter, because Django caches its
translation machinery per process. The output is deterministic for a given
Django.
"""
import json
import os
import subprocess
import sys

CUSTOM_LANGUAGES = [
    ('en', 'English'), ('fr', 'French'), ('fr-ca', 'Canadian French'), ('pt-br', 'Brazilian Portuguese'),
    ('zh-hans', 'Simplified Chinese'), ('es', 'Spanish'), ('de-at', 'Austrian German'),
    ('sr-latn', 'Serbian Latin'), ('xx', 'a language without a catalog'),
]

CONFIGS = {
    'django-defaults': {},
    'custom': {'LANGUAGES': CUSTOM_LANGUAGES, 'LANGUAGE_CODE': 'es', 'LANGUAGE_COOKIE_NAME': 'lang'},
    'patterns-prefixed': {'LANGUAGES': CUSTOM_LANGUAGES, 'LANGUAGE_CODE': 'es', 'patterns': True},
    'patterns-unprefixed-default': {'LANGUAGES': CUSTOM_LANGUAGES, 'LANGUAGE_CODE': 'fr-ca',
                                    'patterns': True, 'prefix_default_language': False},
    'code-not-in-languages': {'LANGUAGES': [('en', 'English'), ('fr', 'French')], 'LANGUAGE_CODE': 'pt-BR'},
    'no-i18n': {'USE_I18N': False, 'LANGUAGE_CODE': 'en-US'},
}

COOKIES = [None, '', 'fr', 'FR', 'fr-ca', 'fr-CA', 'fr_CA', 'fr-be', 'xx', 'zh-cn', 'zh-tw', 'pt-br', 'PT-BR',
           'de', 'de-at', 'sr-latn', 'sr-Latn', 'en-us', 'es-419', 'en@x', 'fr-' + 'a' * 600, 'İt', 'ja']
ACCEPTS = ['', 'fr', 'fr-CA', 'fr-CA,fr;q=0.9', 'de;q=0.1, es', '*', '*, fr', 'zh-CN', 'zh-Hant-TW',
           'en-US,en;q=0.5', 'es-419', 'pt-BR', 'garbage!!', 'fr;q=2', 'fr ; q=0.5 , de', 'x-pig-latin',
           'en;q=0.8,fr;q=0.8', 'da, en-gb;q=0.8, en;q=0.7', 'de-AT;q=0.001, fr-BE;q=0.002', 'FR-ca;q=1.000',
           'fr;q=0., de;q=1.', 'xx', 'sr-Latn-RS', 'ab-cd-ef-gh, ,fr', 'fr\xa0,\xa0de', 'fr,\x85es',
           'en-' + 'x' * 9, ','.join(['de-at'] * 90) + ',fr', 'q' * 600]
PATHS = ['/', '/fr/', '/fr', '/fr-ca/x/', '/FR/', '/de/x', '/de-at/', '/xx/', '/zh-hans/', '/zh-cn/', '/en/',
         '/pt-br/', '/sr@latn/', '/x/', '/fr_CA/', '/über/', '/fr-ü/', '/es/', '/fr\n', '//fr/']


def run_config(name):
    """Print the vectors of one configuration as JSON."""
    spec = CONFIGS[name]
    import django
    from django.conf import settings
    conf = {k: v for k, v in spec.items() if k.isupper()}
    conf.setdefault('USE_I18N', True)
    patterns = spec.get('patterns', False)
    settings.configure(ROOT_URLCONF=__name__ if patterns else 'locale_vectors_none', SECRET_KEY='x',
                       ALLOWED_HOSTS=['*'], INSTALLED_APPS=[], **conf)
    global urlpatterns
    if patterns:
        from django.conf.urls.i18n import i18n_patterns
        from django.http import HttpResponse
        from django.urls import path
        urlpatterns = i18n_patterns(path('x/', lambda r: HttpResponse()),
                                    prefix_default_language=spec.get('prefix_default_language', True))
    else:
        sys.modules['locale_vectors_none'] = type(sys)('locale_vectors_none')
        sys.modules['locale_vectors_none'].urlpatterns = []
    django.setup()
    from django.http import HttpResponse
    from django.middleware.locale import LocaleMiddleware
    from django.test import RequestFactory
    from django.utils import translation

    available = None
    if settings.USE_I18N:
        available = [c for c, _ in settings.LANGUAGES if translation.check_for_language(c)]
    factory = RequestFactory()
    middleware = LocaleMiddleware(lambda r: HttpResponse())

    def language(path, cookie, accept):
        request = factory.get('/')
        request.path_info = path
        if cookie is not None:
            request.COOKIES[settings.LANGUAGE_COOKIE_NAME] = cookie
        if accept:
            request.META['HTTP_ACCEPT_LANGUAGE'] = accept
        middleware.process_request(request)
        code = request.LANGUAGE_CODE
        translation.deactivate()
        return code

    cases = [(p, c, a) for p in PATHS[:1] for c in COOKIES for a in ACCEPTS]
    cases += [(p, c, a) for p in PATHS[1:] for c in (None, 'fr', 'zh-cn') for a in ('', 'de-AT, fr')]
    out = {
        'name': name,
        'settings': {
            'USE_I18N': settings.USE_I18N,
            'LANGUAGE_CODE': settings.LANGUAGE_CODE,
            'LANGUAGES': [c for c, _ in settings.LANGUAGES],
            'LANGUAGE_COOKIE_NAME': settings.LANGUAGE_COOKIE_NAME,
            'available': available,
            'patterns': patterns,
            'prefix_default_language': spec.get('prefix_default_language', True),
        },
        'cases': [{'path': p, 'cookie': c, 'accept': a, 'language': language(p, c, a)} for p, c, a in cases],
    }
    json.dump(out, sys.stdout, ensure_ascii=False)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--config':
        run_config(sys.argv[2])
        return
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outfile = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, 'engine', 'testdata', 'locale.json')
    configs = []
    for name in CONFIGS:
        done = subprocess.run([sys.executable, __file__, '--config', name], check=True, capture_output=True,
                              env={**os.environ, 'PYTHONDONTWRITEBYTECODE': '1'})
        configs.append(json.loads(done.stdout))
    import django
    total = sum(len(c['cases']) for c in configs)
    # One case a line keeps the file readable and its diffs small.
    with open(outfile, 'w', encoding='utf-8') as f:
        f.write('{"django": %s, "configs": [\n' % json.dumps(django.get_version()))
        for i, config in enumerate(configs):
            cases = config.pop('cases')
            head = json.dumps(config, ensure_ascii=False)[:-1]
            f.write(head + ', "cases": [\n')
            f.write(',\n'.join(json.dumps(c, ensure_ascii=False) for c in cases))
            f.write('\n]}' + (',' if i < len(configs) - 1 else '') + '\n')
        f.write(']}\n')
    print(f'locale_vectors.py: wrote {total} cases to {outfile}')


if __name__ == '__main__':
    main()
