"""django-flags' template tags, answered from flagproxy's header.

Map it to django-flags' library name so that existing templates work
unchanged::

    TEMPLATES = [{
        'BACKEND': 'django.template.backends.django.DjangoTemplates',
        'OPTIONS': {'libraries': {'feature_flags': 'flagproxy_django.templatetags.flagproxy_flags'}},
        …
    }]

and ``{% load feature_flags %}`` (or ``{% load flagproxy_flags %}``) gives
the simple tags of django-flags::

    {% flag_enabled 'NAME' as on %}{% if on %}…{% endif %}
    {% flag_disabled 'NAME' as off %}

Each takes the flag name, an optional ``request`` (default: the context's
``request``, else the current request) and keyword arguments, which are
ignored. ``flag_enabled`` gives True, False or None (an unknown flag);
``flag_disabled`` gives True for a flag that is off or unknown.
"""
from django import template

from .. import djflags

register = template.Library()


@register.simple_tag(takes_context=True)
def flag_enabled(context, flag_name, request=None, **kwargs):
    """``{% flag_enabled 'NAME' [request] as var %}``: the flag's state."""
    if request is None:
        request = context.get('request')
    return djflags.flag_enabled(flag_name, request=request, **kwargs)


@register.simple_tag(takes_context=True)
def flag_disabled(context, flag_name, request=None, **kwargs):
    """``{% flag_disabled 'NAME' [request] as var %}``: not the flag's state."""
    if request is None:
        request = context.get('request')
    return djflags.flag_disabled(flag_name, request=request, **kwargs)
