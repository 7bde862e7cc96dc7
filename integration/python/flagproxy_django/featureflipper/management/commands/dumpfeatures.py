"""``manage.py dumpfeatures``: every feature as the features file's JSON."""
import json

from django.core.management.base import BaseCommand

from flagproxy_django.featureflipper.models import Feature


class Command(BaseCommand):
    help = 'Print every feature as a JSON array of {"name", "description", "enabled"}, in name order.'

    def handle(self, *args, **options):
        rows = [{'name': f.name, 'description': f.description, 'enabled': f.enabled}
                for f in Feature.objects.order_by('name')]
        self.stdout.write(json.dumps(rows, indent=2))
