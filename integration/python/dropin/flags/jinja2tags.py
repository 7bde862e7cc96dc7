"""``flags.jinja2tags.flags``: django-flags' Jinja2 extension, from flagproxy's header."""
from jinja2.ext import Extension

from flagproxy_django.jinja import flag_disabled_helper, flag_enabled_helper


class FlagsExtension(Extension):
    """Adds the globals ``flag_enabled`` and ``flag_disabled``."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.globals.update(flag_enabled=flag_enabled_helper, flag_disabled=flag_disabled_helper)


flags = FlagsExtension
