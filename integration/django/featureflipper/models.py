"""A modern port of django-feature-flipper's model (tobych/django-feature-flipper, 2010).

Same table (featureflipper_feature), columns and permission as the original; see
spec/feature-flipper.md sections 1-2. The primary key follows DEFAULT_AUTO_FIELD.
"""
from django.db import models


class Feature(models.Model):
    name = models.CharField(
        max_length=40, db_index=True, unique=True,
        help_text='Required. Used in templates (eg {% feature search %}) and URL parameters.')
    description = models.TextField(max_length=400, blank=True)
    enabled = models.BooleanField(default=False)

    class Meta:
        ordering = ['name']
        permissions = (
            ('can_flip_with_url', 'Can flip features using URL parameters'),
        )

    def __str__(self):
        return self.name

    def enable(self):
        self.enabled = True

    def disable(self):
        self.enabled = False

    def flip(self):
        self.enabled = not self.enabled

    @property
    def status(self):
        return 'enabled' if self.enabled else 'disabled'
