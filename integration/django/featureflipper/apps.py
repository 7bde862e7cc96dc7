from django.apps import AppConfig


class FeatureFlipperConfig(AppConfig):
    name = 'featureflipper'
    verbose_name = 'Feature flipper'
