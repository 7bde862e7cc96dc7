"""flagproxy_django's models: the holder of the flip permission, and the
waffle drop-in's Flag, Switch and Sample when django-waffle is installed.

The module also makes Django send ``post_migrate`` for the app: its handler
(``flagproxy_django.notify.install_after_migrate``) installs the PostgreSQL
notification triggers on flag tables migrated after the app's own migration.
"""
from django.apps import apps
from django.db import models

#: The permission flagproxy's default ``--flip-permission`` accepts (beside
#: feature-flipper's ``featureflipper.can_flip_with_url``), as
#: ``flagproxy_django.can_flip_with_url``.
FLIP_CODENAME = 'can_flip_with_url'
FLIP_NAME = 'Can flip flags with ?enable_x (flagproxy)'


class FlagproxyFlip(models.Model):
    """Holds the permission ``flagproxy_django.can_flip_with_url`` and nothing else.

    Grant it in the admin (to a user or a group) to let someone turn flags on
    or off for themselves through flagproxy: ``?enable_<flag>``,
    ``?session_enable_<flag>`` and the console at ``/_flagproxy/``. The model
    is unmanaged: it has no table; migration 0002 creates the permission.
    """

    id = models.AutoField(primary_key=True)

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [(FLIP_CODENAME, FLIP_NAME)]
        verbose_name = 'flagproxy flip permission'


if apps.is_installed('waffle'):
    # The waffle drop-in (see waffle_models.py): unmanaged models on
    # waffle's tables, used once WAFFLE_FLAG_MODEL (…) names them.
    from .waffle_models import Flag, Sample, Switch  # noqa: F401
