"""``manage.py flagproxy_triggers``: (re)install the PostgreSQL triggers that notify flagproxy."""
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from flagproxy_django import notify


class Command(BaseCommand):
    help = ('Install the trigger flagproxy_notify on every flag table that exists (PostgreSQL only): '
            'it notifies flagproxy, which LISTENs on the channel flagproxy_flags, of every committed change. '
            'Idempotent; tables that do not exist are skipped. The migration of flagproxy_django and every '
            '"manage.py migrate" do the same; run this after creating flag tables some other way.')

    def add_arguments(self, parser):
        parser.add_argument('--database', default=DEFAULT_DB_ALIAS, help='database alias (default: "default")')
        group = parser.add_mutually_exclusive_group()
        group.add_argument('--check', action='store_true',
                           help='only report; exit with status 1 when a flag table lacks the trigger')
        group.add_argument('--recreate', action='store_true',
                           help='drop and create every trigger again (locks each table briefly)')
        group.add_argument('--drop', action='store_true',
                           help='remove every trigger and the function (flagproxy then finds changes by polling)')

    def handle(self, *args, database=DEFAULT_DB_ALIAS, check=False, recreate=False, drop=False, **options):
        connection = connections[database]
        if not notify.supported(connection):
            self.stdout.write(f'Nothing to do: notification triggers are for PostgreSQL, and this database is '
                              f'{connection.vendor} (flagproxy finds changes by polling).')
            return
        tables = notify.flag_tables()
        if check:
            found = notify.status(connection, tables)
            for table, has in found.items():
                self.stdout.write(f'{table}: {"trigger present" if has else "trigger MISSING"}')
            missing = [table for table, has in found.items() if not has]
            if not found:
                self.stdout.write('No flag table exists yet.')
            if missing:
                raise CommandError(f'no trigger on {", ".join(missing)}: run "manage.py flagproxy_triggers"',
                                   returncode=1)
            return
        with transaction.atomic(using=database):
            result = notify.uninstall(connection) if drop else notify.install(connection, tables, recreate=recreate)
        for table in result.installed:
            self.stdout.write(f'{table}: trigger installed')
        for table in result.present:
            self.stdout.write(f'{table}: trigger already present')
        for table in result.removed:
            self.stdout.write(f'{table}: trigger removed')
        if not (result.installed or result.present or result.removed):
            self.stdout.write('No flag table exists yet.' if not drop else 'No trigger to remove.')
