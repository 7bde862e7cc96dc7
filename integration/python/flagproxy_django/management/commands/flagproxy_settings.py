"""``manage.py flagproxy_settings [-o FILE]``: write flagproxy's --django-settings file."""
import json
import os
import tempfile

from django.core.management.base import BaseCommand, CommandError

from flagproxy_django.proxy_settings import SettingsError, collect

SECRET_NOTE = ('The flagproxy settings file holds SECRET_KEY (and SECRET_KEY_FALLBACKS, FLAGPROXY_SIGNING_KEY): '
               'keep it as private as the site\'s settings.')


class Command(BaseCommand):
    help = ('Write the JSON file for "flagproxy serve --django-settings FILE" from this site\'s settings: '
            'every setting flagproxy reads, with Django\'s and the flag libraries\' defaults filled in, '
            'plus the Django version, the session store, the middleware and the language setup.')

    def add_arguments(self, parser):
        parser.add_argument('-o', '--output', metavar='FILE',
                            help='write to FILE (created with mode 0600) instead of standard output')

    def handle(self, *args, output=None, **options):
        try:
            data, notes = collect()
        except SettingsError as e:
            raise CommandError(str(e)) from None
        text = json.dumps(data, indent=2, sort_keys=True) + '\n'
        for note in notes:
            self.stderr.write(f'note: {note}', self.style.WARNING)
        if output:
            write_private(output, text)
            self.stderr.write(f'Wrote {output} (mode 0600). {SECRET_NOTE}', self.style.WARNING)
        else:
            self.stdout.write(text, ending='')
            self.stderr.write(SECRET_NOTE, self.style.WARNING)


def write_private(path, text):
    """Replace ``path`` with ``text``, readable by the owner only.

    The file is written next to its destination with mode 0600 from the
    start and renamed over it, so no other user can read it at any moment
    and a reader never sees half a file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.flagproxy-settings-')  # mode 0600
    except OSError as e:
        raise CommandError(f'cannot write {path}: {e}') from None
    try:
        with os.fdopen(fd, 'w', encoding='ascii') as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise CommandError(f'cannot write {path}: {e}') from None
