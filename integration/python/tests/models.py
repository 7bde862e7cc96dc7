"""Models for the settings command tests (no table is ever created)."""
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models


class SiteFlag(models.Model):
    """A site's own flag model with its own table, for WAFFLE_FLAG_MODEL."""

    name = models.CharField(max_length=100, unique=True)

    class Meta:
        db_table = 'site_feature_flags'


class Member(AbstractBaseUser):
    """A custom user model that logs in by email, for FLAGPROXY_USERNAME_FIELD."""

    email = models.EmailField(unique=True)

    USERNAME_FIELD = 'email'
