"""flagproxy_django: the Django side of flagproxy.

flagproxy evaluates the site's feature flags in front of Django and sends
the decisions in the X-Flagproxy-Flags request header. This package reads
that header (``flagproxy_django.middleware.FlagproxyMiddleware``) and offers
django-feature-flipper's ``request.features`` / ``features_panel`` and
``{% feature %}`` tag, django-waffle's ``flag_is_active`` family,
decorators, mixins and template tags (``flagproxy_django.waffle``,
``flagproxy_django.templatetags.flagproxy_waffle``), django-flags'
``flag_state`` family, decorators, views and template tags
(``flagproxy_django.djflags``,
``flagproxy_django.templatetags.flagproxy_flags``), a test helper
(``flagproxy_django.testing.override_flags``) and the
``flagproxy_settings`` management command. See README.md.
"""

__version__ = '0.1.0'
