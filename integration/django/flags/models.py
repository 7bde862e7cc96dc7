"""The tutorial-style FeatureFlag model (spec/featureflag-model.md section 1).

Tables: flags_featureflag and flags_featureflag_allowed_users.
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
