"""django-waffle's template tags, answered from flagproxy's header.

Map it to waffle's library name so that existing templates work unchanged::

    TEMPLATES = [{
        'BACKEND': 'django.template.backends.django.DjangoTemplates',
        'OPTIONS': {'libraries': {'waffle_tags': 'flagproxy_django.templatetags.flagproxy_waffle'}},
        …
    }]

and ``{% load waffle_tags %}`` (or ``{% load flagproxy_waffle %}``) gives::

    {% flag name %} … {% else %} … {% endflag %}
    {% switch name %} … {% else %} … {% endswitch %}
    {% sample name %} … {% else %} … {% endsample %}
    {% wafflejs %}

As in waffle, the argument may be a context variable; when it does not
resolve to a non-empty value the literal token is the name. ``flag`` uses
the context's ``request`` (the current request when there is none).
``wafflejs`` inlines the script of waffle's ``wafflejs`` view (a global
``waffle`` with ``flag_is_active``, ``switch_is_active``,
``sample_is_active``, ``FLAGS``, ``SWITCHES``, ``SAMPLES``) for the
decisions of the request; with ``FLAGPROXY_WAFFLEJS_URL`` set (flagproxy's
``/_flagproxy/waffle.js``, served when ``--browser-flags`` is), it writes a
script element that loads that URL instead, so the page carries no flag and
only the names flagproxy is told to expose reach the browser.
"""
import json

from django import template
from django.conf import settings
from django.template.base import VariableDoesNotExist
from django.utils.html import escape
from django.utils.safestring import mark_safe

from ..decisions import current
from ..waffle import flag_is_active, sample_is_active, switch_is_active

register = template.Library()


class WaffleNode(template.Node):
    """Renders one of two node lists depending on a flag, switch or sample."""

    child_nodelists = ('nodelist_true', 'nodelist_false')

    def __init__(self, nodelist_true, nodelist_false, condition, name, compiled_name):
        self.nodelist_true = nodelist_true
        self.nodelist_false = nodelist_false
        self.condition = condition
        self.name = name
        self.compiled_name = compiled_name

    def __repr__(self):
        return f'<Waffle node: {self.name}>'

    def render(self, context):
        try:
            name = self.compiled_name.resolve(context)
        except VariableDoesNotExist:
            name = self.name
        if not name:
            name = self.name
        if self.condition(context.get('request'), name):
            return self.nodelist_true.render(context)
        return self.nodelist_false.render(context)

    @classmethod
    def handle_token(cls, parser, token, kind, condition):
        """Parse ``{% kind name %} … [{% else %} …] {% endkind %}``."""
        bits = token.split_contents()
        if len(bits) < 2:
            raise template.TemplateSyntaxError(f'{bits[0]!r} tag requires an argument')
        name = bits[1]
        nodelist_true = parser.parse(('else', f'end{kind}'))
        if parser.next_token().contents == 'else':
            nodelist_false = parser.parse((f'end{kind}',))
            parser.delete_first_token()
        else:
            nodelist_false = template.NodeList()
        return cls(nodelist_true, nodelist_false, condition, name, parser.compile_filter(name))


@register.tag
def flag(parser, token):
    """``{% flag name %} … [{% else %} …] {% endflag %}``."""
    return WaffleNode.handle_token(parser, token, 'flag', flag_is_active)


@register.tag
def switch(parser, token):
    """``{% switch name %} … [{% else %} …] {% endswitch %}``."""
    return WaffleNode.handle_token(parser, token, 'switch', lambda request, name: switch_is_active(name))


@register.tag
def sample(parser, token):
    """``{% sample name %} … [{% else %} …] {% endsample %}``."""
    return WaffleNode.handle_token(parser, token, 'sample', lambda request, name: sample_is_active(name))


_WAFFLE_JS = '''(function(){
  var FLAGS = %(flags)s,
    SWITCHES = %(switches)s,
    SAMPLES = %(samples)s;
  function lookup(values, name, fallback) {
    return values[name] === undefined ? fallback : !!values[name];
  }
  window.waffle = {
    "flag_is_active": function waffle_flag(flag_name) {
      return lookup(FLAGS, flag_name, %(flag_default)s);
    },
    "switch_is_active": function waffle_switch(switch_name) {
      return lookup(SWITCHES, switch_name, %(switch_default)s);
    },
    "sample_is_active": function waffle_sample(sample_name) {
      return lookup(SAMPLES, sample_name, %(sample_default)s);
    },
    "FLAGS": FLAGS,
    "SWITCHES": SWITCHES,
    "SAMPLES": SAMPLES
  };
})();'''

# Escapes that keep JSON inert inside a <script> element and valid as
# JavaScript (U+2028 and U+2029 end a line in older engines).
_SCRIPT_ESCAPES = {ord('<'): '\\u003c', ord('>'): '\\u003e', ord('&'): '\\u0026',
                   0x2028: '\\u2028', 0x2029: '\\u2029'}


def _js(value):
    return json.dumps(value, sort_keys=True).translate(_SCRIPT_ESCAPES)


def wafflejs_script(request):
    """The script of ``{% wafflejs %}`` for ``request``'s decisions (a safe string)."""
    url = getattr(settings, 'FLAGPROXY_WAFFLEJS_URL', None)
    if url:
        # Inside <script>, as {% wafflejs %} is used: the parser runs
        # the written script before the next one, as an inline one.
        return mark_safe('document.write(%s);' % _js(f'<script src="{escape(url)}"></script>'))
    decisions = current(request)
    decisions.lookup_all()  # as waffle's wafflejs evaluates every flag
    return mark_safe(_WAFFLE_JS % {
        'flags': _js(decisions.flags),
        'switches': _js(decisions.switches),
        'samples': _js(decisions.samples),
        'flag_default': _js(bool(getattr(settings, 'WAFFLE_FLAG_DEFAULT', False))),
        'switch_default': _js(bool(getattr(settings, 'WAFFLE_SWITCH_DEFAULT', False))),
        'sample_default': _js(bool(getattr(settings, 'WAFFLE_SAMPLE_DEFAULT', False))),
    })


class WaffleJSNode(template.Node):
    """The inline script of ``{% wafflejs %}``."""

    def render(self, context):
        return wafflejs_script(context.get('request'))


@register.tag
def wafflejs(parser, token):
    """``{% wafflejs %}``: waffle's JavaScript API with this request's values,
    or a loader of FLAGPROXY_WAFFLEJS_URL when it is set."""
    return WaffleJSNode()
