"""The checks of ``manage.py flagproxy_doctor``: does flagproxy agree with this site?

Each check returns a :class:`Result`: ``ok``, ``fail`` (with what to do)
or ``skip`` (it could not be made, and why). The checks:

``middleware``
    FlagproxyMiddleware is installed and waffle's WaffleMiddleware is not.
``settings file``
    the --django-settings file equals what ``flagproxy_settings`` writes now.
``proxy in front``, ``signature``
    a request through flagproxy reaches FlagproxyMiddleware with a flags
    header it accepts (probe.py), signed the way this site checks.
``sessions``
    a session made here for a real user, in the site's session store, is
    that user to flagproxy (its /explain), so both hold the same SECRET_KEY;
    the probe session is deleted afterwards.
``database``
    the flag, switch and sample names flagproxy loaded (its /flags.json)
    are those of this site's tables, source by source. (The snapshot
    version digests the settings too, so names and counts are compared.)
"""
import json
from dataclasses import dataclass
from importlib import import_module
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import HTTPRedirectHandler, Request, build_opener

from django.apps import apps
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db import connection

from . import conf
from .probe import PROBE_HEADER, make_token
from .proxy_settings import SettingsError, collect

OK, FAIL, SKIP = 'ok', 'fail', 'skip'
WAFFLE_MIDDLEWARE = 'waffle.middleware.WaffleMiddleware'
_SHOWN = 5  # names listed per difference


@dataclass
class Result:
    """The outcome of one check; ``advice`` says what to do about a failure."""

    name: str
    status: str
    detail: str
    advice: str = ''


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = build_opener(_NoRedirect)


def _get(url, headers=None, timeout=5):
    """(status, body text) of a GET; HTTP errors are answers too."""
    try:
        with _opener.open(Request(url, headers=headers or {}), timeout=timeout) as r:
            return r.status, r.read().decode('utf-8', 'replace')
    except HTTPError as e:
        return e.code, e.read().decode('utf-8', 'replace')


class Doctor:
    """Runs the checks against flagproxy at ``proxy_url`` and ``admin_url``."""

    def __init__(self, proxy_url, admin_url, settings_file=None, path='/', host=None, probe_user=None,
                 featureflag_app='flags', timeout=5):
        self.proxy_url = proxy_url.rstrip('/')
        self.admin_url = admin_url.rstrip('/')
        self.settings_file = settings_file
        self.path = path if path.startswith('/') else '/' + path
        self.host = host
        self.probe_user = probe_user
        self.featureflag_app = featureflag_app
        self.timeout = timeout
        self._status = None

    def run(self):
        """Every check's Result, in order."""
        return [self.middleware(), self.settings_file_current(), *self.proxy_in_front(), self.sessions(),
                self.database()]

    # middleware ---------------------------------------------------------

    def middleware(self):
        name = 'middleware'
        installed = list(settings.MIDDLEWARE or ())
        if WAFFLE_MIDDLEWARE in installed:
            return Result(name, FAIL, f'{WAFFLE_MIDDLEWARE} is still in MIDDLEWARE: it writes waffle\'s dwf_ cookies '
                          'from in-process decisions, beside the ones flagproxy writes.',
                          f'Remove {WAFFLE_MIDDLEWARE!r} from MIDDLEWARE (flagproxy writes waffle\'s cookies itself).')
        if conf.MIDDLEWARE_PATH not in installed:
            return Result(name, FAIL, f'{conf.MIDDLEWARE_PATH} is not in MIDDLEWARE: no view sees the header.',
                          f'Add {conf.MIDDLEWARE_PATH!r} to MIDDLEWARE, before any middleware that reads flags.')
        return Result(name, OK, 'FlagproxyMiddleware is installed and WaffleMiddleware is not.')

    # settings file ------------------------------------------------------

    def settings_file_current(self):
        name = 'settings file'
        if not self.settings_file:
            return Result(name, SKIP, 'no settings file named (--settings-file, or FLAGPROXY_SETTINGS_FILE).')
        redo = f'Run "manage.py flagproxy_settings -o {self.settings_file}" and restart flagproxy.'
        try:
            with open(self.settings_file, encoding='utf-8') as f:
                found = json.load(f)
        except (OSError, ValueError) as e:
            return Result(name, FAIL, f'cannot read {self.settings_file}: {e}', redo)
        try:
            data, _ = collect()
        except SettingsError as e:
            return Result(name, FAIL, f'this site\'s settings cannot be written: {e}', 'Fix the setting named.')
        want = json.loads(json.dumps(data))
        if not isinstance(found, dict):
            return Result(name, FAIL, f'{self.settings_file} is not a JSON object.', redo)
        differ = sorted(k for k in set(want) | set(found) if want.get(k, ...) != found.get(k, ...))
        if differ:  # names only: values may be secrets
            return Result(name, FAIL, f'{self.settings_file} is out of date: {_names(differ)} differ from this '
                          'site\'s settings.', redo)
        return Result(name, OK, f'{self.settings_file} is what flagproxy_settings writes now.')

    # proxy in front, signature -----------------------------------------

    def proxy_in_front(self):
        """The results "proxy in front" and "signature", from one probe."""
        front, sig = 'proxy in front', 'signature'
        url = self.proxy_url + self.path
        headers = {PROBE_HEADER: make_token()}
        if self.host:
            headers['Host'] = self.host
        try:
            status, body = _get(url, headers, self.timeout)
        except (URLError, OSError) as e:
            return (Result(front, FAIL, f'cannot reach flagproxy at {self.proxy_url}: {_reason(e)}',
                           'Start flagproxy, or pass --proxy-url (or set FLAGPROXY_URL) to its --listen address.'),
                    Result(sig, SKIP, 'no answer through flagproxy.'))
        answer = _json(body)
        if not (isinstance(answer, dict) and answer.get('flagproxy_probe') == 1):
            return (Result(front, FAIL, f'GET {url} answered {status} without reaching FlagproxyMiddleware of this '
                           'site.', 'Check that flagproxy\'s --upstream is this site, that FlagproxyMiddleware is in '
                           'MIDDLEWARE and that SECRET_KEY is the running site\'s; pass --path for a URL Django '
                           'serves and --host if ALLOWED_HOSTS needs it.'),
                    Result(sig, SKIP, 'the probe did not reach the site.'))
        return self._front(url, answer), self._signature(answer)

    def _front(self, url, answer):
        name = 'proxy in front'
        if not answer.get('header'):
            return Result(name, FAIL, f'GET {url} reached this site without an X-Flagproxy-Flags header.',
                          f'{self.proxy_url} is not flagproxy, or something between it and Django drops the '
                          'header: point --proxy-url at flagproxy\'s --listen address.')
        error, state = answer.get('error') or '', answer.get('state')
        if 'Signature' in error:
            return Result(name, OK, f'a request through {self.proxy_url} reached this site with a flags header '
                          '(its signature is refused: see "signature").')
        if error:
            advice = ('flagproxy has not loaded the flag tables yet: see its log and /readyz.'
                      if state == 'unavailable' else 'See the reason; the site gives every flag its default.')
            return Result(name, FAIL, f'the header was refused: {error}', advice)
        return Result(name, OK, f'a request through {self.proxy_url} reached this site with a flags header '
                      f'(snapshot {answer.get("version") or "?"}, state {state}).')

    def _signature(self, answer):
        name = 'signature'
        error = answer.get('error') or ''
        if 'Signature' in error:
            return Result(name, FAIL, error, 'Give flagproxy the key of FLAGPROXY_SIGNING_KEY (--signing-key, '
                          'FLAGPROXY_SIGNING_KEY, or the settings file), or unset it here.')
        if answer.get('signature_header') and not answer.get('signature_checked'):
            return Result(name, FAIL, 'flagproxy signs the header but this site does not check the signature.',
                          'Set FLAGPROXY_SIGNING_KEY to flagproxy\'s --signing-key.')
        if answer.get('signature_checked'):
            return Result(name, OK, 'the header\'s signature verifies with FLAGPROXY_SIGNING_KEY.')
        return Result(name, OK, 'the header is not signed, and this site does not ask for it (optional: '
                      'FLAGPROXY_SIGNING_KEY).')

    # sessions -----------------------------------------------------------

    def sessions(self):
        name = 'sessions'
        status, problem = self._flagproxy_status()
        if problem:
            return Result(name, SKIP, problem)
        flag = _any_flag(status)
        if flag is None:
            return Result(name, SKIP, 'flagproxy knows no flag, switch or sample, and /explain needs one.')
        user = self._user()
        if user is None:
            return Result(name, SKIP, 'no active user to make a probe session for.',
                          'Pass --probe-user USERNAME.')
        pk = user._meta.pk.value_to_string(user)
        store = import_module(settings.SESSION_ENGINE).SessionStore()
        store[SESSION_KEY] = pk
        store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.save()
        try:
            visitor = self._explain(flag, store.session_key)
        finally:
            store.delete()
        who = f'user {user.get_username()!r} (pk {pk})'
        if isinstance(visitor, str):
            return Result(name, FAIL, f'flagproxy\'s /explain did not answer: {visitor}',
                          'Check --admin-url (FLAGPROXY_ADMIN_URL).')
        if visitor.get('identity') == 'user' and visitor.get('user_id') == pk:
            return Result(name, OK, f'flagproxy recognises a session made here for {who}.')
        return Result(name, FAIL, f'flagproxy took a session made here for {who} for an anonymous visitor: every '
                      'visitor is anonymous to it.',
                      'flagproxy\'s SECRET_KEY probably differs from this site\'s (or SESSION_ENGINE, '
                      'AUTHENTICATION_BACKENDS, or its --database): run "manage.py flagproxy_settings -o FILE", '
                      'give flagproxy --django-settings FILE, and unset --secret-key / FLAGPROXY_SECRET_KEY if '
                      'they hold another key.')

    def _user(self):
        users = get_user_model()._default_manager
        if self.probe_user:
            return users.filter(**{get_user_model().USERNAME_FIELD: self.probe_user}).first()
        fields = {f.name for f in get_user_model()._meta.get_fields()}
        found = users.filter(is_active=True) if 'is_active' in fields else users.all()
        order = ['-is_superuser', 'pk'] if 'is_superuser' in fields else ['pk']
        return found.order_by(*order).first()

    def _explain(self, flag, session_key):
        query = urlencode({'flag': flag, 'session': session_key})
        try:
            status, body = _get(f'{self.admin_url}/explain?{query}', timeout=self.timeout)
        except (URLError, OSError) as e:
            return _reason(e)
        answer = _json(body)
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get('visitor'), dict):
            return f'HTTP {status}'
        return answer['visitor']

    # database -----------------------------------------------------------

    def database(self):
        name = 'database'
        status, problem = self._flagproxy_status()
        if problem:
            return Result(name, SKIP, problem)
        theirs, ours = _snapshot_names(status), self.site_names()
        differences = []
        for key in sorted(set(theirs) | set(ours)):
            differences += _compare(key, ours.get(key), theirs.get(key))
        counts = ', '.join(f'{len(v)} {k[1]} {k[0]}' for k, v in sorted(ours.items()))
        if differences:
            notes = [p.get('message', '') for p in status.get('problems') or () if isinstance(p, dict)]
            detail = '; '.join(differences) + (f' (flagproxy reports: {"; ".join(notes[:3])})' if notes else '')
            return Result(name, FAIL, f'flagproxy\'s snapshot {status.get("version")} differs from this site\'s '
                          f'rows: {detail}.', 'Point flagproxy\'s --database at this site\'s database (the same '
                          'schema: ?search_path=), check --sources and --featureflag-app, and run the doctor again '
                          'if flags were being changed.')
        return Result(name, OK, f'flagproxy\'s snapshot {status.get("version")} holds this site\'s '
                      f'{counts or "no flags"}.')

    def _flagproxy_status(self):
        """(flagproxy's /flags.json, None) or (None, why not)."""
        if self._status is None:
            try:
                code, body = _get(self.admin_url + '/flags.json', timeout=self.timeout)
            except (URLError, OSError) as e:
                self._status = (None, f'cannot reach flagproxy\'s admin listener at {self.admin_url}: {_reason(e)} '
                                '(pass --admin-url, or set FLAGPROXY_ADMIN_URL)')
                return self._status
            answer = _json(body)
            if code != 200 or not isinstance(answer, dict):
                self._status = (None, f'{self.admin_url}/flags.json answered HTTP {code}')
            elif not answer.get('ready'):
                self._status = (None, 'flagproxy has no snapshot yet')
            else:
                self._status = (answer, None)
        return self._status

    def site_names(self):
        """(kind, source) -> the names this site's tables (and FLAGS) hold."""
        tables = set(connection.introspection.table_names())
        out = {}

        def read(key, table, column='name'):
            if table in tables:
                with connection.cursor() as c:
                    c.execute(f'SELECT {connection.ops.quote_name(column)} FROM {connection.ops.quote_name(table)}')
                    out.setdefault(key, set()).update(row[0] for row in c.fetchall())

        read(('flags', 'waffle'), _table('WAFFLE_FLAG_MODEL', 'waffle.Flag', 'waffle_flag'))
        read(('switches', 'waffle'), _table('WAFFLE_SWITCH_MODEL', 'waffle.Switch', 'waffle_switch'))
        read(('samples', 'waffle'), _table('WAFFLE_SAMPLE_MODEL', 'waffle.Sample', 'waffle_sample'))
        read(('flags', 'featureflipper'), 'featureflipper_feature')
        read(('flags', 'featureflag'), f'{self.featureflag_app.lower()}_featureflag', 'key')
        sources = getattr(settings, 'FLAG_SOURCES', None) or (
            'flags.sources.SettingsFlagsSource', 'flags.sources.DatabaseFlagsSource')
        if 'flags.sources.DatabaseFlagsSource' in sources:
            read(('flags', 'django-flags'), 'flags_flagstate')
        if 'flags.sources.SettingsFlagsSource' in sources and isinstance(getattr(settings, 'FLAGS', None), dict):
            out.setdefault(('flags', 'django-flags'), set()).update(n for n in settings.FLAGS if isinstance(n, str))
        return out


def _table(setting, default, fallback):
    try:
        return apps.get_model(getattr(settings, setting, default))._meta.db_table
    except (LookupError, ValueError):
        return fallback


def _snapshot_names(status):
    """(kind, source) -> names, from flagproxy's /flags.json."""
    out = {}
    for source in status.get('sources') or ():
        if source == 'waffle':
            for kind in ('flags', 'switches', 'samples'):
                out[(kind, source)] = set()
        else:
            out[('flags', source)] = set()
    for kind in ('flags', 'switches', 'samples'):
        for entry in status.get(kind) or ():
            for source in [entry.get('source') or 'waffle', *(entry.get('conflict') or ())]:
                out.setdefault((kind, source), set()).add(entry.get('name'))
    return out


def _compare(key, ours, theirs):
    """The differences of one (kind, source), as phrases."""
    label = f'{key[1]} {key[0]}'
    if theirs is None:
        return [f'flagproxy does not read the {label} this site has ({len(ours)})']
    if ours is None:
        return [f'flagproxy has {len(theirs)} {label} but this site has no table for them']
    out = []
    if ours - theirs:
        out.append(f'{label} missing in flagproxy: {_names(sorted(ours - theirs))}')
    if theirs - ours:
        out.append(f'{label} only in flagproxy: {_names(sorted(theirs - ours))}')
    return out


def _any_flag(status):
    """A name /explain accepts, or None."""
    for kind, prefix in (('flags', ''), ('switches', 'switch:'), ('samples', 'sample:')):
        for entry in status.get(kind) or ():
            if isinstance(entry.get('name'), str):
                return prefix + entry['name']
    return None


def _names(names):
    shown = ', '.join(repr(n) for n in names[:_SHOWN])
    return shown + (f' and {len(names) - _SHOWN} more' if len(names) > _SHOWN else '')


def _json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def _reason(e):
    return str(getattr(e, 'reason', None) or e)
