"""``{% load feature_tag %}``: django-feature-flipper's ``{% feature %}`` tag.

::

    {% feature search %}
      … shown when the feature is on …
    {% disabled %}
      … shown when it is off (optional) …
    {% endfeature %}

The name is the literal token (it is not resolved as a variable; quotes
become part of it) and is looked up as ``features[name]``, so an unknown
name is off and sends ``feature_defaulted``. ``features`` is the context
variable set by ``flagproxy_django.context_processors.features``; without
it the current request's flags are used.
"""
from django import template

from ..decisions import FeatureDict, current

register = template.Library()


class FeatureNode(template.Node):
    """Renders one of two node lists depending on a feature's state."""

    child_nodelists = ('nodelist_enabled', 'nodelist_disabled')

    def __init__(self, name, nodelist_enabled, nodelist_disabled):
        self.name = name
        self.nodelist_enabled = nodelist_enabled
        self.nodelist_disabled = nodelist_disabled

    def __repr__(self):
        return f'<FeatureNode: {self.name}>'

    def render(self, context):
        if feature_is_on(context.get('features'), context.get('request'), self.name):
            return self.nodelist_enabled.render(context)
        return self.nodelist_disabled.render(context)


def feature_is_on(features, request, name):
    """``features[name]`` when ``features`` is the context's FeatureDict, else
    the same lookup in ``request``'s (or the current request's) flags."""
    if not isinstance(features, FeatureDict):
        features = FeatureDict.of(current(request))
    return bool(features[name])


@register.tag
def feature(parser, token):
    """``{% feature NAME %} … [{% disabled %} …] {% endfeature %}``."""
    bits = token.split_contents()
    if len(bits) != 2:
        raise template.TemplateSyntaxError("'feature' tag requires a single argument")
    nodelist_enabled = parser.parse(('disabled', 'endfeature'))
    if parser.next_token().contents == 'disabled':
        nodelist_disabled = parser.parse(('endfeature',))
        parser.delete_first_token()
    else:
        nodelist_disabled = template.NodeList()
    return FeatureNode(bits[1], nodelist_enabled, nodelist_disabled)
