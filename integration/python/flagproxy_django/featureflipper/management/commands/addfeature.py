"""``manage.py addfeature NAME …``: create features, disabled."""
from django.core.management.base import BaseCommand

from flagproxy_django.featureflipper.models import Feature


class Command(BaseCommand):
    help = 'Add each named feature, disabled, unless it exists.'

    def add_arguments(self, parser):
        parser.add_argument('names', nargs='+', metavar='NAME')

    def handle(self, *args, names=(), **options):
        for name in names:
            feature, created = Feature.objects.get_or_create(name=name, defaults={'enabled': False})
            if created:
                self.stdout.write(f'Added feature {name}')
            else:
                self.stdout.write(f'Feature {name} already exists, and is {feature.status}')
