"""feature-flipper's {% feature %} tag, for EXAMPLE_FLAGS=waffle.

mysite/settings.py maps the library name "feature_tag" to this module in
that mode, so templates `{% load feature_tag %}` in both modes; behind
flagproxy the name is flagproxy_django's library.

    {% feature search %} ... {% disabled %} ... {% endfeature %}

The name is taken literally (not a variable) and looked up in the
`features` context variable (pages.inprocess.features); unknown names are
disabled.
"""
from django import template

from pages.inprocess import FeatureDict

register = template.Library()


class FeatureNode(template.Node):
    def __init__(self, name, nodelist_enabled, nodelist_disabled):
        self.name = name
        self.nodelist_enabled = nodelist_enabled
        self.nodelist_disabled = nodelist_disabled

    def render(self, context):
        if context.get('features', FeatureDict())[self.name]:
            return self.nodelist_enabled.render(context)
        return self.nodelist_disabled.render(context)


@register.tag
def feature(parser, token):
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
