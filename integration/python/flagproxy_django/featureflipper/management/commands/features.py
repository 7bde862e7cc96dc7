"""``manage.py features``: each feature and its status, in name order."""
from django.core.management.base import BaseCommand

from flagproxy_django.featureflipper.models import Feature


class Command(BaseCommand):
    help = 'List every feature of featureflipper_feature as "<name> is enabled|disabled".'

    def handle(self, *args, **options):
        for feature in Feature.objects.order_by('name'):
            self.stdout.write(f'{feature.name} is {feature.status}')
