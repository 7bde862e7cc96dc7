"""manage.py flagproxy_shadow_report: summarize shadow mode's mismatches.

Reads the log files named on the command line (default: the setting
FLAGPROXY_SHADOW_LOG), finds the lines that flagproxy_django.shadow logged
(``flagproxy shadow mismatch {…}``, whatever the log format put before
them) and prints, for each flag, switch and sample that disagreed: how
often, both answers, the header's sources, the users and an example path,
the first and last time. ``--json`` prints the same as JSON. The exit
status is 0, or 1 with ``--fail`` when any mismatch was found, for scripts.
"""
import json
from collections import Counter

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ...shadow import MARKER


class Command(BaseCommand):
    help = 'Summarize the mismatches FLAGPROXY_SHADOW logged (header vs. django-waffle in process).'

    def add_arguments(self, parser):
        parser.add_argument('files', nargs='*', help='log files (default: FLAGPROXY_SHADOW_LOG)')
        parser.add_argument('--json', action='store_true', help='print JSON instead of a table')
        parser.add_argument('--fail', action='store_true', help='exit with status 1 when there is any mismatch')

    def handle(self, *args, **options):
        files = options['files'] or [p for p in [getattr(settings, 'FLAGPROXY_SHADOW_LOG', None)] if p]
        if not files:
            raise CommandError('name a log file, or set FLAGPROXY_SHADOW_LOG')
        summary, skipped = summarize(read_mismatches(files))
        if options['json']:
            self.stdout.write(json.dumps({'mismatches': summary, 'unreadable_lines': skipped}, indent=2))
        else:
            self.stdout.write(render(summary, skipped, files))
        if options['fail'] and summary:
            raise SystemExit(1)


def read_mismatches(files):
    """Yield each mismatch object found in ``files`` (None for a line that
    has the marker but no valid object after it)."""
    decoder = json.JSONDecoder()
    for path in files:
        try:
            handle = open(path, encoding='utf-8', errors='replace')
        except OSError as e:
            raise CommandError(f'cannot read {path}: {e.strerror}') from None
        with handle:
            for line in handle:
                at = line.find(MARKER)
                if at < 0:
                    continue
                try:
                    obj, _ = decoder.raw_decode(line, at + len(MARKER))
                except ValueError:
                    obj = None
                yield obj if isinstance(obj, dict) and _valid(obj) else None


def _valid(obj):
    return (isinstance(obj.get('kind'), str) and isinstance(obj.get('name'), str)
            and isinstance(obj.get('header'), bool) and isinstance(obj.get('waffle'), bool))


def summarize(mismatches):
    """Group mismatches by (kind, name); returns (rows, unreadable lines)."""
    groups, skipped = {}, 0
    for m in mismatches:
        if m is None:
            skipped += 1
            continue
        g = groups.setdefault((m['kind'], m['name']), {
            'kind': m['kind'], 'name': m['name'], 'count': 0, 'answers': Counter(), 'sources': Counter(),
            'users': Counter(), 'example_path': str(m.get('path', '')), 'first': None, 'last': None})
        g['count'] += 1
        g['answers'][f"header {_on(m['header'])}, waffle {_on(m['waffle'])}"] += 1
        g['sources'][str(m.get('source', ''))] += 1
        g['users'][str(m.get('user', ''))] += 1
        when = str(m.get('time', ''))
        g['first'] = min(filter(None, [g['first'], when]), default=None)
        g['last'] = max(filter(None, [g['last'], when]), default=None)
    rows = sorted(groups.values(), key=lambda g: (-g['count'], g['kind'], g['name']))
    for g in rows:
        for key in ('answers', 'sources', 'users'):
            g[key] = dict(g[key].most_common())
    return rows, skipped


_SINGULAR = {'flags': 'flag', 'switches': 'switch', 'samples': 'sample'}


def _on(value):
    return 'on' if value else 'off'


def render(rows, skipped, files):
    """The summary as text."""
    if not rows:
        lines = [f'No shadow mismatches in {", ".join(files)}.']
    else:
        total = sum(g['count'] for g in rows)
        lines = [f'{total} shadow mismatches of {len(rows)} names in {", ".join(files)}:', '']
        for g in rows:
            lines.append(f"{_SINGULAR.get(g['kind'], g['kind'])} {g['name']}: {g['count']}")
            lines.append('  ' + '; '.join(f'{k}: {n}' for k, n in g['answers'].items()))
            lines.append('  sources: ' + ', '.join(f'{k} {n}' for k, n in g['sources'].items()))
            users = list(g['users'].items())
            more = f' (and {len(users) - 5} more)' if len(users) > 5 else ''
            lines.append('  users: ' + ', '.join(f'{k} {n}' for k, n in users[:5]) + more)
            lines.append(f"  e.g. {g['example_path'] or '-'}; first {g['first'] or '?'}, last {g['last'] or '?'}")
    if skipped:
        lines.append(f'{skipped} lines with the marker could not be read.')
    return '\n'.join(lines) + '\n'
