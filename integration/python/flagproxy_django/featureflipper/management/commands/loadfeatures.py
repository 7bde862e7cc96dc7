"""``manage.py loadfeatures [FILE]``: upsert features from a features file."""
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from flagproxy_django.featureflipper.models import Feature

from ._base import features_file

_KEYS = {'name': str, 'description': str, 'enabled': bool}


class Command(BaseCommand):
    help = ('Create or update features from FILE (default: settings.FEATURE_FLIPPER_FEATURES_FILE, or '
            'FEATURES_FILE), a JSON array of {"name", "description", "enabled"}; features not in the file are kept.')

    def add_arguments(self, parser):
        parser.add_argument('path', nargs='?', metavar='FILE')

    def handle(self, *args, path=None, verbosity=1, **options):
        path = path or features_file()
        if not path:
            self.stdout.write('settings.FEATURE_FLIPPER_FEATURES_FILE is not set.')
            return
        entries = read_features(path)
        with transaction.atomic():  # all or nothing, unlike the 2010 command
            for entry in entries:
                Feature.objects.update_or_create(
                    name=entry['name'], defaults={'description': entry['description'], 'enabled': entry['enabled']})
        if verbosity > 0:
            self.stdout.write(f'Loaded {len(entries)} features.')


def read_features(path):
    """The entries of a features file, checked; CommandError says what is wrong."""
    try:
        with open(path, encoding='utf-8') as f:
            entries = json.load(f)
    except (OSError, ValueError) as e:
        raise CommandError(f'cannot read {path}: {e}') from None
    if not isinstance(entries, list):
        raise CommandError(f'{path} must hold a JSON array of features')
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise CommandError(f'{path}: entry {i} is not an object')
        for key, kind in _KEYS.items():
            if not isinstance(entry.get(key), kind):
                # a JSON true/false: the string "false" would have meant enabled in 2010
                raise CommandError(f'{path}: entry {i} needs "{key}" as a JSON {"boolean" if kind is bool else "string"}')
    return entries
