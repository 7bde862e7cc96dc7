"""What feature-flipper's commands share."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from flagproxy_django.featureflipper.models import Feature


def features_file():
    """FEATURE_FLIPPER_FEATURES_FILE, else the README's older FEATURES_FILE, else None."""
    return getattr(settings, 'FEATURE_FLIPPER_FEATURES_FILE', None) or getattr(settings, 'FEATURES_FILE', None)


class SetStateCommand(BaseCommand):
    """enablefeature and disablefeature: set ``enabled`` of each named feature."""

    enabled = None  # True or False in the subclass
    verb = ''  # 'Enabled' or 'Disabled'

    def add_arguments(self, parser):
        parser.add_argument('names', nargs='+', metavar='NAME')

    def handle(self, *args, names=(), **options):
        state = 'enabled' if self.enabled else 'disabled'
        missing = []
        for name in names:
            feature = Feature.objects.filter(name=name).first()
            if feature is None:
                # feature-flipper stopped at the first unknown name; the rest are still set here.
                self.stdout.write(f'Feature {name} is not in the database.')
                missing.append(name)
            elif feature.enabled == self.enabled:
                self.stdout.write(f'Feature {name} is already {state}.')
            else:
                feature.enabled = self.enabled
                feature.save()
                self.stdout.write(f'{self.verb} feature {name}.')
        if missing:
            raise CommandError(f'{len(missing)} of the features named are not in the database', returncode=1)
