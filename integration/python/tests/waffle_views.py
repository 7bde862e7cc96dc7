"""Views written against django-waffle's own API, unchanged, for the drop-in tests."""
from django.http import JsonResponse
from django.template import Context, Engine
from django.views.generic import View
from waffle import flag_is_active, sample_is_active, switch_is_active
from waffle.decorators import waffle_flag
from waffle.mixins import WaffleFlagMixin

# waffle's own template library (the package's test settings map the name
# waffle_tags to flagproxy's, so this engine names waffle's explicitly).
ENGINE = Engine(libraries={'waffle_tags': 'waffle.templatetags.waffle_tags'})
PAGE = ENGINE.from_string(
    '{% load waffle_tags %}{% flag "checkout" %}on{% else %}off{% endflag %}'
    ' {% switch "maintenance" %}on{% else %}off{% endswitch %}')


def report(request):
    return JsonResponse({
        'view': flag_is_active(request, 'checkout'),
        'template': PAGE.render(Context({'request': request})),
        'switch': switch_is_active('maintenance'),
        'sample': sample_is_active('survey'),
    })


@waffle_flag('checkout')
def decorated(request):
    return JsonResponse({'ok': True})


class Mixed(WaffleFlagMixin, View):
    waffle_flag = 'checkout'

    def get(self, request):
        return JsonResponse({'ok': True})
