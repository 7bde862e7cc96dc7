"""A stand-in for django-flags' read API under its own module path, answered by flagproxy.

For a site that removes django-flags from its environment once flagproxy
decides its flags, and keeps every import: put this directory
(``integration/python/dropin``) on the Python path and keep ``'flags'`` in
INSTALLED_APPS. Then, unchanged:

- ``from flags.state import flag_state, flag_enabled, flag_disabled``
- ``from flags.decorators import flag_check, flag_required``
- ``from flags.views import FlaggedViewMixin, FlaggedTemplateView``
- ``{% load feature_flags %}`` with ``{% flag_enabled 'NAME' as v %}`` and ``flag_disabled``
- Jinja2: the extension ``flags.jinja2tags.flags`` (``flag_enabled``, ``flag_disabled``)

all answer from the X-Flagproxy-Flags header (flagproxy_django.djflags).
Not here: the FlagState model and its admin (edit ``flags_flagstate`` rows
another way, or keep django-flags installed and import from
``flagproxy_django.djflags`` instead), ``flags.state.enable_flag`` /
``disable_flag``, ``flags.urls`` (``flagged_path`` and friends),
``flags.sources`` and the conditions registry.
"""
