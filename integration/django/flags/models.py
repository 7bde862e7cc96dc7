"""The flags app of the test site: two flag sources share the app label ``flags``.

- The tutorial-style FeatureFlag model (spec/featureflag-model.md section 1).
  Tables: flags_featureflag and flags_featureflag_allowed_users.
- django-flags' (cfpb) FlagState model (spec/django-flags.md section 1).
  Table: flags_flagstate.
"""
from django.conf import settings
from django.db import models


class FeatureFlag(models.Model):
    key = models.SlugField(unique=True)
    enabled = models.BooleanField(default=False)
    rollout_percent = models.PositiveSmallIntegerField(default=0)
    allowed_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True)

    def __str__(self):
        return self.key


class FlagState(models.Model):
    """django-flags' FlagState, reproduced because the library cannot be installed here.

    django-flags is not packaged by Debian and this machine has no PyPI, so
    the test site carries a copy of the library's model under the library's
    own app label (``flags``), which gives the library's table name,
    ``flags_flagstate``. The fields, defaults and constraint are those of
    django-flags 5.2.0 after its migrations
    0012_replace_migrations_for_wagtail_independence (the squash of
    0001-0011: name, condition, value), 0013_add_required_field (required)
    and 0014_flagstate_unique_constraint (the named unique constraint that
    replaced the unique_together), as spec/django-flags.md section 1 quotes
    them. The library's app config pins a 32-bit AutoField; this site's
    DEFAULT_AUTO_FIELD is BigAutoField, hence the explicit ``id``.
    """

    id = models.AutoField(primary_key=True)
    name = models.CharField(max_length=64)
    condition = models.CharField(max_length=64, default='boolean')
    value = models.CharField(max_length=127, default='True')
    required = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=('name', 'condition', 'value'),
                name='flags_flagstate_unique_name_condition_value',
            ),
        ]

    def __str__(self):
        return '{name} is enabled when {condition} is {value}{required}'.format(
            name=self.name, condition=self.condition, value=self.value,
            required=' (required)' if self.required else '',
        )
