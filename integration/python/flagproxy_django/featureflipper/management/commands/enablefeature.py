"""``manage.py enablefeature NAME …``."""
from ._base import SetStateCommand


class Command(SetStateCommand):
    help = 'Enable each named feature; a name not in the database is reported (exit status 1).'
    enabled = True
    verb = 'Enabled'
