"""Views that report what flagproxy_django gave them, as JSON."""
from django.http import HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.views import View

from flagproxy_django import djflags
from flagproxy_django.decisions import current
from flagproxy_django.waffle import (
    WaffleFlagMixin, WaffleSampleMixin, WaffleSwitchMixin, flag_is_active, sample_is_active, switch_is_active,
    waffle_flag, waffle_switch,
)


def report(request):
    """Everything the request carries, and what the no-request API says."""
    d = request.flagproxy
    return JsonResponse({
        'flags': d.flags, 'switches': d.switches, 'samples': d.samples, 'sources': d.sources,
        'version': d.version, 'state': d.state, 'error': d.error,
        'features': request.features,
        'panel': {name: [f['enabled'], f['source']] for name, f in request.features_panel.features.items()},
        'flag_new_ui': flag_is_active(request, 'new_ui'),
        'switch_maintenance': switch_is_active('maintenance'),
        'sample_survey': sample_is_active('survey'),
    })


async def async_report(request):
    """switch_is_active in an async view."""
    return JsonResponse({'switch_maintenance': switch_is_active('maintenance'), 'state': current().state})


def template_view(request):
    """Render tests/templates/page.html with the context processors."""
    return TemplateResponse(request, 'page.html')


def ok(request, *args, **kwargs):
    """A plain answer, for the decorated views."""
    return HttpResponse('ok')


def target(request, *args, **kwargs):
    """Where the decorators redirect to."""
    return HttpResponse('target')


flagged = waffle_flag('new_ui')(ok)
not_flagged = waffle_flag('!new_ui')(ok)
flagged_redirect = waffle_flag('new_ui', redirect_to='target')(ok)
flagged_redirect_args = waffle_flag('new_ui', redirect_to='target-with-arg')(ok)
flagged_bad_redirect = waffle_flag('new_ui', redirect_to='no-such-url-name')(ok)
switched = waffle_switch('maintenance')(ok)
not_switched = waffle_switch('!maintenance')(ok)
switched_redirect = waffle_switch('maintenance', redirect_to=target)(ok)


class FlagView(WaffleFlagMixin, View):
    waffle_flag = 'new_ui'

    def get(self, request):
        return HttpResponse('flag view')


class NotFlagView(WaffleFlagMixin, View):
    waffle_flag = '!new_ui'

    def get(self, request):
        return HttpResponse('not flag view')


class SwitchView(WaffleSwitchMixin, View):
    waffle_switch = 'maintenance'

    def get(self, request):
        return HttpResponse('switch view')


class SampleView(WaffleSampleMixin, View):
    waffle_sample = 'survey'

    def get(self, request):
        return HttpResponse('sample view')


# django-flags (flagproxy_django.djflags)

def djflags_report(request):
    """flag_state, flag_enabled and flag_disabled of the flags named in ?name=."""
    names = request.GET.getlist('name')
    return JsonResponse({name: [djflags.flag_state(name, request=request), djflags.flag_enabled(name, request=request),
                                djflags.flag_disabled(name)] for name in names})


def djflags_template(request):
    """Render tests/templates/djflags.html ({% load feature_flags %})."""
    return TemplateResponse(request, 'djflags.html', {'name': request.GET.get('name', 'beta')})


def fallback(request, *args, **kwargs):
    """The fallback of the django-flags decorators and views."""
    return HttpResponse(f'fallback {args} {kwargs}')


flag_checked = djflags.flag_check('beta', True)(ok)
flag_checked_off = djflags.flag_check('beta', False)(ok)
flag_checked_fallback = djflags.flag_check('beta', True, fallback=fallback)(ok)
flag_required = djflags.flag_required('beta')(ok)
flag_required_unset = djflags.flag_required('beta', pass_if_set=False)(ok)
flag_required_fallback = djflags.flag_required('beta', fallback_view=fallback)(ok)


class BetaView(djflags.FlaggedViewMixin, View):
    flag_name = 'beta'

    def get(self, request, *args, **kwargs):
        return HttpResponse('beta view')


class NoBetaView(BetaView):
    state = False
    fallback = fallback


def reads(request):
    """Read some names, each through a different API, one of them unknown."""
    flag_is_active(request, 'new_ui')
    flag_is_active(request, 'ghost_flag')
    switch_is_active('maintenance')
    djflags.flag_state('beta', request=request)
    request.features.get('profile')
    return HttpResponse('ok')


def wafflejs(request):
    """Render waffle's script, which evaluates every name."""
    return TemplateResponse(request, 'wafflejs.html')
