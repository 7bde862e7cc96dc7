"""The app of feature-flipper's model, under feature-flipper's own label."""
from django.apps import AppConfig


class FeatureFlipperConfig(AppConfig):
    name = 'flagproxy_django.featureflipper'
    label = 'featureflipper'
    verbose_name = 'feature flipper'
    # syncdb made an integer primary key; keep it whatever DEFAULT_AUTO_FIELD says.
    default_auto_field = 'django.db.models.AutoField'
