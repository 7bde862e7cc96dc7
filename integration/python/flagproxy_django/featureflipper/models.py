"""feature-flipper's Feature, field for field (spec/feature-flipper.md sections 1-2)."""
from django.db import models


class Feature(models.Model):
    """One named feature, on or off for everyone (the "site" layer)."""

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
        """``"enabled"`` or ``"disabled"``."""
        return 'enabled' if self.enabled else 'disabled'
