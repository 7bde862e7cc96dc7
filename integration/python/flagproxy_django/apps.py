"""The flagproxy_django Django application."""
from django.apps import AppConfig


class FlagproxyConfig(AppConfig):
    """Registers the system checks and the handler that installs notification triggers after migrate.

    The app has no models; its one migration installs PostgreSQL triggers
    (see flagproxy_django/notify.py).
    """

    name = 'flagproxy_django'
    verbose_name = 'flagproxy'

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401 (registers the checks)
        from .notify import install_after_migrate

        post_migrate.connect(install_after_migrate, sender=self, dispatch_uid='flagproxy_django.notify')
