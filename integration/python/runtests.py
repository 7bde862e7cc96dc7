#!/usr/bin/env python3
"""Run flagproxy_django's tests with Django's own test runner.

    cd integration/python && /usr/bin/python3 runtests.py [-v N] [--failfast] [test labels …]

No installation is needed: this directory is put first on sys.path and the
settings are tests/settings.py. The tests need no database. One test runs
"flagproxy serve --check-config" on the file that flagproxy_settings writes:
it uses the binary named by $FLAGPROXY_BINARY, else "go run ./cmd/flagproxy"
in the repository, and is skipped when neither is available.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('labels', nargs='*', default=['tests'], help='test labels (default: tests)')
    parser.add_argument('-v', '--verbosity', type=int, default=1, choices=range(4))
    parser.add_argument('--failfast', action='store_true')
    args = parser.parse_args()

    sys.path.insert(0, HERE)
    os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'
    import django
    from django.conf import settings
    from django.test.utils import get_runner

    django.setup()
    runner = get_runner(settings)(verbosity=args.verbosity, failfast=args.failfast)
    failures = runner.run_tests(args.labels)
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
