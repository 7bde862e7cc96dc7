"""A Jinja2 extension with flagproxy's answers, for sites that render with Jinja2.

::

    TEMPLATES = [{
        'BACKEND': 'django.template.backends.jinja2.Jinja2',
        'OPTIONS': {'extensions': ['flagproxy_django.jinja.FlagproxyExtension'], …},
        …
    }]

It adds the globals of waffle's ``waffle.jinja.WaffleExtension``, of
django-flags' ``flags.jinja2tags.flags`` and a feature-flipper one::

    {% if waffle.flag('new_ui') %}…{% endif %}     {# also waffle.switch, waffle.sample #}
    <script>{{ waffle.wafflejs() }}</script>
    {% if flag_enabled('BETA') %}…{% endif %}     {# flag_disabled too; a request argument is optional #}
    {% if feature('search') %}…{% endif %}

All answer from the header of the request in the context (``request``,
which Django's Jinja2 backend passes), else of the request being processed,
exactly as the Django template tags do. ``WaffleExtension`` is a second
name for the class, so that a site replaces ``waffle.jinja.WaffleExtension``
by ``flagproxy_django.jinja.WaffleExtension`` and changes nothing else.
"""
from jinja2 import pass_context
from jinja2.ext import Extension
from markupsafe import Markup

from . import djflags
from .templatetags.feature_tag import feature_is_on
from .templatetags.flagproxy_waffle import wafflejs_script
from .waffle import flag_is_active, sample_is_active, switch_is_active


@pass_context
def flag_helper(context, flag_name):
    """``waffle.flag(name)``."""
    return flag_is_active(context.get('request'), flag_name)


@pass_context
def wafflejs_helper(context):
    """``waffle.wafflejs()``: the script of ``{% wafflejs %}``."""
    return Markup(wafflejs_script(context.get('request')))


@pass_context
def feature_helper(context, name):
    """``feature(name)``: feature-flipper's ``{% feature %}`` as a test."""
    return feature_is_on(context.get('features'), context.get('request'), name)


@pass_context
def flag_enabled_helper(context, flag_name, request=None, **kwargs):
    """django-flags' ``flag_enabled(name, request=None, **kwargs)``."""
    return djflags.flag_enabled(flag_name, request=request or context.get('request'), **kwargs)


@pass_context
def flag_disabled_helper(context, flag_name, request=None, **kwargs):
    """django-flags' ``flag_disabled(name, request=None, **kwargs)``."""
    return djflags.flag_disabled(flag_name, request=request or context.get('request'), **kwargs)


class FlagproxyExtension(Extension):
    """Adds ``waffle``, ``flag_enabled``, ``flag_disabled`` and ``feature``."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.globals.update({
            'waffle': {'flag': flag_helper, 'switch': switch_is_active, 'sample': sample_is_active,
                       'wafflejs': wafflejs_helper},
            'flag_enabled': flag_enabled_helper,
            'flag_disabled': flag_disabled_helper,
            'feature': feature_helper,
        })


WaffleExtension = FlagproxyExtension
