"""Admin pages for the feature-flipper and FeatureFlag tables (waffle
registers its own). Whatever you change here reaches flagproxy within a
second (its --poll-interval)."""
from django.contrib import admin

from featureflipper.models import Feature
from flags.models import FeatureFlag


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = ('name', 'description', 'enabled')
    list_editable = ('enabled',)


@admin.register(FeatureFlag)
class FeatureFlagAdmin(admin.ModelAdmin):
    list_display = ('key', 'enabled', 'rollout_percent')
    list_editable = ('enabled', 'rollout_percent')
    filter_horizontal = ('allowed_users',)
