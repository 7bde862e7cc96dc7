"""The shop's views: django-waffle's own API, as the site always used it."""
from django.http import JsonResponse
from django.template.loader import render_to_string
from waffle import flag_is_active, switch_is_active
from waffle.decorators import waffle_flag


def checkout(request):
    """What the view and the template each decided, and the shop's other reads."""
    return JsonResponse({
        'view': flag_is_active(request, 'new_checkout'),
        'template': render_to_string('waffleshop/checkout.html', request=request).strip(),
        'half': flag_is_active(request, 'half_rollout'),
        'maintenance': switch_is_active('maintenance'),
    })


@waffle_flag('new_checkout')
def beta(request):
    return JsonResponse({'beta': True})
