"""The PostgreSQL notification triggers: notify.py, the migration, post_migrate and flagproxy_triggers.

The PostgreSQL tests run when FLAGPROXY_TEST_POSTGRES_DSN is set (as for
flagproxy's Go tests) and psycopg2 is installed; they migrate a scratch
database of their own.
"""
import io
import os
import re
import secrets
import select
import unittest
import urllib.parse

from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.db.migrations.recorder import MigrationRecorder
from django.test import SimpleTestCase, TestCase, modify_settings, override_settings

from flagproxy_django import notify

HERE = os.path.dirname(os.path.abspath(__file__))
GO_LISTEN = os.path.join(HERE, '..', '..', '..', 'djangodb', 'listen.go')

try:
    import psycopg2
except ImportError:  # pragma: no cover
    psycopg2 = None


class FlagTablesTests(SimpleTestCase):
    def test_defaults(self):
        tables = notify.flag_tables()
        for table in ('waffle_flag', 'waffle_flag_users', 'waffle_flag_groups', 'waffle_switch', 'waffle_sample',
                      'featureflipper_feature', 'flags_featureflag', 'flags_featureflag_allowed_users',
                      'flags_flagstate'):
            self.assertIn(table, tables)
        self.assertEqual(tables, sorted(set(tables)))

    def test_featureflag_of_every_installed_app(self):
        # flagproxy's --featureflag-app may name any app label.
        self.assertIn('tests_featureflag', notify.flag_tables())
        self.assertIn('tests_featureflag_allowed_users', notify.flag_tables())

    @override_settings(WAFFLE_FLAG_MODEL='tests.SiteFlag', WAFFLE_SWITCH_MODEL='site.Toggle')
    def test_swapped_waffle_models(self):
        tables = notify.flag_tables()
        # The model's Meta.db_table, as flagproxy's FLAGPROXY_WAFFLE_FLAG_TABLE says,
        # and an unresolvable model by its default table name.
        for table in ('site_feature_flags', 'site_feature_flags_users', 'site_feature_flags_groups', 'site_toggle'):
            self.assertIn(table, tables)
        self.assertIn('waffle_flag', tables)  # the default tables stay

    def test_names_match_flagproxy(self):
        """The channel, trigger and payload names are the Go constants of djangodb/listen.go."""
        if not os.path.exists(GO_LISTEN):
            self.skipTest('djangodb/listen.go is not beside this package')
        with open(GO_LISTEN, encoding='utf-8') as f:
            go = f.read()
        for name, value in (('NotifyChannel', notify.CHANNEL), ('NotifyTrigger', notify.TRIGGER),
                            ('TriggersPayload', notify.TRIGGERS_PAYLOAD)):
            with self.subTest(name):
                self.assertRegex(go, r'\b%s\s*=\s*"%s"' % (name, re.escape(value)))
        self.assertIn(f"pg_notify('{notify.CHANNEL}', TG_TABLE_NAME)", notify.FUNCTION_SQL)


class SQLiteTests(TestCase):
    """On SQLite (these tests' database) the migration and the command do nothing."""

    def test_migration_applied_without_effect(self):
        self.assertIn(notify.MIGRATION, MigrationRecorder(connection).applied_migrations())
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'")
            self.assertEqual(cursor.fetchone()[0], 0)

    def test_command_says_nothing_to_do(self):
        out = io.StringIO()
        call_command('flagproxy_triggers', stdout=out)
        self.assertIn('Nothing to do', out.getvalue())
        call_command('flagproxy_triggers', '--check', stdout=io.StringIO())

    def test_post_migrate_handler_is_a_noop(self):
        notify.install_after_migrate(sender=None, using='default', plan=[])


class FakeCursor:
    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, params=None):
        self.conn.executed.append(' '.join(sql.split()))
        self.result = self.conn.results.pop(0) if 'pg_catalog.pg_class' in sql else []

    def fetchall(self):
        return self.result


class FakeConnection:
    """Records SQL; catalog queries return the queued results in order."""

    vendor = 'postgresql'

    class ops:
        @staticmethod
        def quote_name(name):
            return f'"{name}"'

    def __init__(self, *results):
        self.executed, self.results = [], list(results)

    def cursor(self):
        return FakeCursor(self)


class InstallTests(SimpleTestCase):
    def test_install_creates_missing_triggers_only(self):
        conn = FakeConnection([('waffle_flag', True), ('waffle_switch', False)])
        result = notify.install(conn)
        self.assertEqual((result.installed, result.present), (['waffle_switch'], ['waffle_flag']))
        sql = conn.executed
        self.assertIn(' '.join(notify.FUNCTION_SQL.split()), sql)
        self.assertIn(' '.join(notify.TRIGGER_SQL.format(table='"waffle_switch"').split()), sql)
        self.assertFalse(any('ON "waffle_flag"' in s for s in sql))
        self.assertEqual(sql[-1], notify.ANNOUNCE_SQL)

    def test_install_without_anything_to_do_announces_nothing(self):
        conn = FakeConnection([('waffle_flag', True)])
        notify.install(conn)
        self.assertNotIn(notify.ANNOUNCE_SQL, conn.executed)

    def test_recreate(self):
        conn = FakeConnection([('waffle_flag', True)])
        self.assertEqual(notify.install(conn, recreate=True).installed, ['waffle_flag'])
        self.assertIn(notify.DROP_TRIGGER_SQL.format(table='"waffle_flag"'), conn.executed)

    def test_uninstall_drops_every_trigger_then_the_function(self):
        conn = FakeConnection([('public', 'waffle_flag'), ('app', 'flags_flagstate')])
        result = notify.uninstall(conn)
        self.assertEqual(result.removed, ['waffle_flag', 'flags_flagstate'])
        self.assertEqual(conn.executed[1:], [
            notify.DROP_TRIGGER_SQL.format(table='"public"."waffle_flag"'),
            notify.DROP_TRIGGER_SQL.format(table='"app"."flags_flagstate"'),
            notify.DROP_FUNCTION_SQL,
            notify.ANNOUNCE_SQL,
        ])


def postgres_dsn():
    dsn = os.environ.get('FLAGPROXY_TEST_POSTGRES_DSN', '')
    return '' if dsn in ('', 'skip') else dsn


@unittest.skipUnless(postgres_dsn() and psycopg2, 'set FLAGPROXY_TEST_POSTGRES_DSN and install psycopg2')
class PostgresTests(unittest.TestCase):
    """The real migration, post_migrate handler and command on a scratch PostgreSQL database."""

    alias = 'flagproxy_notify_test'

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        u = urllib.parse.urlsplit(postgres_dsn())
        query = dict(urllib.parse.parse_qsl(u.query))
        cls.params = dict(host=u.hostname or query.get('host'), port=u.port or 5432, user=u.username or '',
                          password=urllib.parse.unquote(u.password or ''), sslmode=query.get('sslmode', 'prefer'))
        cls.name = 'flagproxy_django_test_' + secrets.token_hex(6)
        admin = psycopg2.connect(dbname=u.path.lstrip('/') or 'postgres', **cls.params)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE {cls.name}')
        admin.close()
        cls.admin_dbname = u.path.lstrip('/') or 'postgres'
        db = {'ENGINE': 'django.db.backends.postgresql', 'NAME': cls.name, 'USER': cls.params['user'],
              'PASSWORD': cls.params['password'], 'HOST': cls.params['host'], 'PORT': str(cls.params['port']),
              'OPTIONS': {'sslmode': cls.params['sslmode']}}
        connections.databases[cls.alias] = db
        cls.db = connections[cls.alias]

    @classmethod
    def tearDownClass(cls):
        cls.db.close()
        del connections[cls.alias]
        del connections.databases[cls.alias]
        admin = psycopg2.connect(dbname=cls.admin_dbname, **cls.params)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS {cls.name} WITH (FORCE)')
        admin.close()
        super().tearDownClass()

    def sql(self, query, *params):
        with self.db.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description else None

    def triggered(self):
        return [name for (name,) in self.sql(
            'SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = %s ORDER BY 1',
            notify.TRIGGER)]

    def manage(self, *args):
        out = io.StringIO()
        call_command(*args, database=self.alias, stdout=out, stderr=io.StringIO(), verbosity=0)
        return out.getvalue()

    def listen(self):
        listener = psycopg2.connect(dbname=self.name, **self.params)
        listener.autocommit = True
        with listener.cursor() as cursor:
            cursor.execute(f'LISTEN {notify.CHANNEL}')
        self.addCleanup(listener.close)
        return listener

    @staticmethod
    def notifications(listener, timeout=2.0):
        select.select([listener], [], [], timeout)
        listener.poll()
        got = [n.payload for n in listener.notifies]
        listener.notifies.clear()
        return got

    def test_migrate_command_and_reverse(self):
        # featureflipper_feature is made by hand below, as a table outside Django's migrations.
        without = modify_settings(INSTALLED_APPS={'remove': ['flagproxy_django.featureflipper']})
        without.enable()
        self.addCleanup(without.disable)
        self.manage('migrate')
        waffle = 'waffle' in settings.INSTALLED_APPS
        expected = ['waffle_flag', 'waffle_flag_groups', 'waffle_flag_users', 'waffle_sample', 'waffle_switch']
        # waffle's tables are created after flagproxy_django's migration ran
        # (apps migrate in name order): the post_migrate handler covers them.
        self.assertEqual(self.triggered(), expected if waffle else [])

        # A flag table made outside Django's migrations has no trigger until the command runs.
        self.sql('CREATE TABLE featureflipper_feature (id serial PRIMARY KEY, name varchar(40), enabled boolean)')
        with self.assertRaises(CommandError) as caught:
            self.manage('flagproxy_triggers', '--check')
        self.assertIn('featureflipper_feature', str(caught.exception))
        listener = self.listen()
        out = self.manage('flagproxy_triggers')
        self.assertIn('featureflipper_feature: trigger installed', out)
        self.assertEqual(self.notifications(listener), [notify.TRIGGERS_PAYLOAD])
        self.assertIn('featureflipper_feature: trigger already present', self.manage('flagproxy_triggers'))
        self.assertIn('featureflipper_feature: trigger present', self.manage('flagproxy_triggers', '--check'))

        # A committed change notifies, once per table and transaction; a rolled-back one does not.
        self.db.set_autocommit(False)
        try:
            self.sql("INSERT INTO featureflipper_feature (name, enabled) VALUES ('a', true)")
            self.sql("UPDATE featureflipper_feature SET enabled = false")
            self.assertEqual(self.notifications(listener, 0.2), [])
            self.db.commit()
            self.assertEqual(self.notifications(listener), ['featureflipper_feature'])
            self.sql('TRUNCATE featureflipper_feature')
            self.db.rollback()
            self.assertEqual(self.notifications(listener, 0.2), [])
        finally:
            self.db.set_autocommit(True)

        # Reversing the migration drops every trigger and the function; migrating again reinstalls them all.
        self.manage('migrate', 'flagproxy_django', 'zero')
        self.assertEqual(self.triggered(), [])
        self.assertEqual(self.sql('SELECT count(*) FROM pg_proc WHERE proname = %s', notify.FUNCTION), [(0,)])
        self.assertIn(notify.TRIGGERS_PAYLOAD, self.notifications(listener))
        self.manage('migrate')
        self.assertEqual(self.triggered(), sorted(expected + ['featureflipper_feature'] if waffle
                                                   else ['featureflipper_feature']))
