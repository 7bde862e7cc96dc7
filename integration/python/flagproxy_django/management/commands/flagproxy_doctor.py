"""``manage.py flagproxy_doctor``: check that flagproxy and this site agree (see flagproxy_django/doctor.py)."""
from django.core.management.base import BaseCommand, CommandError

from flagproxy_django import conf
from flagproxy_django.doctor import FAIL, OK, Doctor

_MARKS = {OK: '[ ok ]', FAIL: '[FAIL]'}


class Command(BaseCommand):
    help = ('Check this site against a running flagproxy: the proxy is in front, it recognises this site\'s '
            'sessions (same SECRET_KEY), reads the same flag tables, has a current settings file and the '
            'same signing key, and WaffleMiddleware is gone. Exits with status 1 when a check fails.')

    def add_arguments(self, parser):
        proxy, admin, settings_file = conf.doctor_defaults()
        parser.add_argument('--proxy-url', default=proxy,
                            help=f'flagproxy\'s --listen address as a URL (FLAGPROXY_URL; default {proxy})')
        parser.add_argument('--admin-url', default=admin,
                            help=f'flagproxy\'s --admin-listen address as a URL (FLAGPROXY_ADMIN_URL; default {admin})')
        parser.add_argument('--settings-file', default=settings_file, metavar='FILE',
                            help='the --django-settings file flagproxy reads (FLAGPROXY_SETTINGS_FILE)')
        parser.add_argument('--path', default='/', help='a URL path of this site to send the probe to (default /)')
        parser.add_argument('--host', help='the Host header of the probe, when ALLOWED_HOSTS needs one')
        parser.add_argument('--probe-user', metavar='USERNAME',
                            help='the user of the probe session (default: the first active superuser, else user)')
        parser.add_argument('--featureflag-app', default='flags', help='flagproxy\'s --featureflag-app (default flags)')
        parser.add_argument('--timeout', type=float, default=5, help='seconds to wait for each answer (default 5)')

    def handle(self, *args, **o):
        doctor = Doctor(o['proxy_url'], o['admin_url'], o['settings_file'], path=o['path'], host=o['host'],
                        probe_user=o['probe_user'], featureflag_app=o['featureflag_app'], timeout=o['timeout'])
        results = doctor.run()
        for r in results:
            mark = _MARKS.get(r.status, '[skip]')
            style = {OK: self.style.SUCCESS, FAIL: self.style.ERROR}.get(r.status, self.style.WARNING)
            self.stdout.write(style(f'{mark} {r.name}: ') + r.detail)
            if r.advice:
                self.stdout.write(f'       → {r.advice}')
        failed = [r.name for r in results if r.status == FAIL]
        if failed:
            raise CommandError(f'{len(failed)} of {len(results)} checks failed: {", ".join(failed)}', returncode=1)
        self.stdout.write(self.style.SUCCESS('flagproxy and this site agree.'))
