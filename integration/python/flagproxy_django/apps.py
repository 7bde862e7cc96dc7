"""The flagproxy_django Django application."""
from django.apps import AppConfig


class FlagproxyConfig(AppConfig):
    """Registers the system checks; the app has no models."""

    name = 'flagproxy_django'
    verbose_name = 'flagproxy'

    def ready(self):
        from . import checks  # noqa: F401 (registers the checks)
