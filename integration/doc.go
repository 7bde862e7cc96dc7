// Package integration holds flagproxy's end-to-end tests: a real Django
// site (Debian's python3-django, python3-django-waffle, python3-psycopg2,
// gunicorn, run with /usr/bin/python3) on real SQLite and PostgreSQL
// databases, with the flagproxy binary built from this tree in front.
//
// The tests are black-box: they talk HTTP and SQL and import no flagproxy
// package. They are behind the build tag "integration":
//
//	FLAGPROXY_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go test -race -tags integration ./integration/
//
// Without Django, or without FLAGPROXY_TEST_POSTGRES_DSN, the affected
// tests skip, except under CI=true, where they fail.
//
// The Django test site lives in integration/django.
package integration
