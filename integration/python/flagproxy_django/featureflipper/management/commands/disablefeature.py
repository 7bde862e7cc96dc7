"""``manage.py disablefeature NAME …``."""
from ._base import SetStateCommand


class Command(SetStateCommand):
    help = 'Disable each named feature; a name not in the database is reported (exit status 1).'
    enabled = False
    verb = 'Disabled'
