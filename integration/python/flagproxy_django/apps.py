"""The flagproxy_django Django application."""
from django.apps import AppConfig


class FlagproxyConfig(AppConfig):
    """Registers the system checks and the handler that installs notification triggers after migrate.

    Its migrations install PostgreSQL triggers (0001, see
    flagproxy_django/notify.py) and create the flip permission
    ``flagproxy_django.can_flip_with_url`` (0002, on an unmanaged model
    without a table, see models.py).
    """

    name = 'flagproxy_django'
    verbose_name = 'flagproxy'

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401 (registers the checks)
        from .notify import install_after_migrate
        from .shadow import install_log_file

        install_log_file()
        if self.apps.is_installed('waffle'):
            from .waffle_models import unmanage_through_tables

            unmanage_through_tables()

        post_migrate.connect(install_after_migrate, sender=self, dispatch_uid='flagproxy_django.notify')
