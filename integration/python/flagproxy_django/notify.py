"""PostgreSQL triggers that tell flagproxy at once when a flag table changes.

flagproxy reads the site's flag tables and, on PostgreSQL, listens on the
channel ``flagproxy_flags``. The trigger ``flagproxy_notify`` on each flag
table (statement-level, AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE) sends
a notification there, which PostgreSQL delivers when the transaction
commits; flagproxy then reloads its flags within milliseconds instead of at
its next poll. Without the triggers flagproxy still sees every change, by
polling.

The migration ``0001_notify_triggers`` installs the triggers on the flag
tables that exist when it runs, and again after every ``manage.py migrate``
(a ``post_migrate`` handler), so tables of apps migrated later get theirs;
``manage.py flagproxy_triggers`` does the same on demand. Reversing the
migration removes them. On other databases nothing is done.

The DDL below is also what flagproxy's Go tests apply
(``djangodb/change_test.go`` reads these literals): keep the ``r'''…'''``
form of ``FUNCTION_SQL`` and ``TRIGGER_SQL``.
"""
from django.apps import apps
from django.conf import settings

CHANNEL = 'flagproxy_flags'
TRIGGER = 'flagproxy_notify'
FUNCTION = 'flagproxy_notify'
#: Sent on CHANNEL after triggers were installed or removed: running
#: proxies check the triggers again at once.
TRIGGERS_PAYLOAD = 'flagproxy-triggers'

MIGRATION = ('flagproxy_django', '0001_notify_triggers')

FUNCTION_SQL = r'''
CREATE OR REPLACE FUNCTION flagproxy_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flagproxy_flags', TG_TABLE_NAME);
    RETURN NULL;
END
$$
'''

# {table} is the quoted table name. EXECUTE PROCEDURE is accepted by every
# PostgreSQL Django supports (EXECUTE FUNCTION needs 11).
TRIGGER_SQL = r'''
CREATE TRIGGER flagproxy_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE PROCEDURE flagproxy_notify()
'''

DROP_TRIGGER_SQL = 'DROP TRIGGER IF EXISTS flagproxy_notify ON {table}'
DROP_FUNCTION_SQL = 'DROP FUNCTION IF EXISTS flagproxy_notify()'
ANNOUNCE_SQL = "SELECT pg_notify('flagproxy_flags', 'flagproxy-triggers')"

# The ordinary and partitioned tables among %s that unqualified names
# resolve to, and whether each has the trigger.
_TABLES_SQL = '''
SELECT c.relname, EXISTS (
    SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = %s AND NOT t.tgisinternal)
FROM pg_catalog.pg_class c
WHERE c.relname = ANY (%s) AND c.relkind IN ('r', 'p') AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY c.relname
'''

# Every table with a trigger that runs the function, in any schema.
_TRIGGERED_SQL = '''
SELECT n.nspname, c.relname
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE t.tgname = %s AND t.tgfoid = to_regproc(%s)
ORDER BY n.nspname, c.relname
'''


def _model_table(setting, default):
    """The table of the model a WAFFLE_*_MODEL setting names."""
    label = getattr(settings, setting, default)
    try:
        return apps.get_model(label)._meta.db_table
    except (LookupError, ValueError):
        app_label, _, model = str(label).partition('.')
        return f'{app_label}_{model}'.lower()


def flag_tables():
    """Every table flagproxy may read flags from, whether it exists or not.

    waffle's tables (also those of swapped WAFFLE_*_MODEL models, and the
    flag model's ``_users`` and ``_groups`` tables), ``featureflipper_feature``,
    ``<label>_featureflag`` and ``<label>_featureflag_allowed_users`` for
    ``flags`` and every installed app label (flagproxy's
    ``--featureflag-app``), and django-flags' ``flags_flagstate``.
    """
    tables = {'waffle_flag', 'waffle_flag_users', 'waffle_flag_groups', 'waffle_switch', 'waffle_sample',
              'featureflipper_feature', 'flags_flagstate'}
    flag = _model_table('WAFFLE_FLAG_MODEL', 'waffle.Flag')
    tables |= {flag, flag + '_users', flag + '_groups',
               _model_table('WAFFLE_SWITCH_MODEL', 'waffle.Switch'),
               _model_table('WAFFLE_SAMPLE_MODEL', 'waffle.Sample')}
    for label in {'flags'} | {config.label for config in apps.get_app_configs()}:
        tables |= {f'{label}_featureflag', f'{label}_featureflag_allowed_users'}
    return sorted(tables)


class Result:
    """What install or uninstall did: table names by outcome."""

    def __init__(self):
        self.installed = []  # the trigger was created
        self.present = []    # the trigger was there already
        self.removed = []    # the trigger was dropped

    def __repr__(self):
        return f'Result(installed={self.installed}, present={self.present}, removed={self.removed})'


def supported(connection):
    """Whether triggers apply to this connection: PostgreSQL only."""
    return connection.vendor == 'postgresql'


def status(connection, tables=None):
    """Map each existing flag table (of ``tables``, default flag_tables()) to whether it has the trigger."""
    with connection.cursor() as cursor:
        cursor.execute(_TABLES_SQL, [TRIGGER, list(tables if tables is not None else flag_tables())])
        return dict(cursor.fetchall())


def install(connection, tables=None, recreate=False):
    """Install the function and the trigger on every existing flag table.

    Idempotent: a table that has the trigger keeps it, unless ``recreate``
    (then it is dropped and created again, which briefly locks the table).
    Tables that do not exist are skipped. Running proxies are told to check
    the triggers again when the transaction commits. Call it inside a
    transaction (a migration, ``transaction.atomic``).
    """
    result = Result()
    quote = connection.ops.quote_name
    found = status(connection, tables)
    with connection.cursor() as cursor:
        cursor.execute(FUNCTION_SQL)
        for table, has in found.items():
            if has and not recreate:
                result.present.append(table)
                continue
            cursor.execute(DROP_TRIGGER_SQL.format(table=quote(table)))
            cursor.execute(TRIGGER_SQL.format(table=quote(table)))
            result.installed.append(table)
        if result.installed:
            cursor.execute(ANNOUNCE_SQL)
    return result


def uninstall(connection):
    """Drop every trigger that runs the function, in any schema, then the function."""
    result = Result()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(_TRIGGERED_SQL, [TRIGGER, FUNCTION])
        for schema, table in cursor.fetchall():
            cursor.execute(DROP_TRIGGER_SQL.format(table=f'{quote(schema)}.{quote(table)}'))
            result.removed.append(table)
        cursor.execute(DROP_FUNCTION_SQL)
        if result.removed:
            cursor.execute(ANNOUNCE_SQL)
    return result


def install_after_migrate(sender, using, verbosity=1, plan=None, **kwargs):
    """post_migrate handler: install the triggers on flag tables created since.

    It runs after ``migrate`` (not ``flush``, which sends no plan), on
    PostgreSQL, while the migration is applied: an app installed after
    flagproxy_django gets its triggers when its tables are migrated.
    """
    from django.db import connections, transaction
    from django.db.migrations.recorder import MigrationRecorder

    if plan is None:
        return
    connection = connections[using]
    if not supported(connection) or MIGRATION not in MigrationRecorder(connection).applied_migrations():
        return
    with transaction.atomic(using=using):
        result = install(connection)
    if verbosity >= 2 and result.installed:
        print(f'  flagproxy: notification triggers installed on {", ".join(result.installed)}')
