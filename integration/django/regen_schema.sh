#!/usr/bin/env bash
# Regenerate the schema fixtures (sqlite.sql, postgres.sql) from the test site's real migrations.
#
# usage: integration/django/regen_schema.sh [--sqlite-only] [OUTDIR]
#
# OUTDIR defaults to djangodb/testdata/schema in the repository. The PostgreSQL part creates and
# drops a scratch database flagproxy_schema_<random> through FLAGPROXY_TEST_POSTGRES_DSN
# (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable); it needs psql and pg_dump.
# The output is byte-for-byte deterministic for a given Django, waffle and pg_dump.
set -euo pipefail

site_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$site_dir/../.." && pwd)
python=/usr/bin/python3

sqlite_only=false
outdir=
for arg in "$@"; do
  case "$arg" in
    --sqlite-only) sqlite_only=true ;;
    -h|--help) sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "regen_schema.sh: unknown option $arg" >&2; exit 2 ;;
    *) [ -z "$outdir" ] || { echo "regen_schema.sh: more than one OUTDIR" >&2; exit 2; }; outdir=$arg ;;
  esac
done
outdir=${outdir:-$repo_root/djangodb/testdata/schema}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

dsn=${FLAGPROXY_TEST_POSTGRES_DSN:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
pg_db=
tmp=$(mktemp -d)
cleanup() {
  if [ -n "$pg_db" ]; then
    psql "$dsn" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null ||
      echo "regen_schema.sh: could not drop database $pg_db" >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# manage.py runs the test site against the database URL in $1; no .pyc files land in the tree.
manage() {
  local url=$1
  shift
  (cd "$site_dir" && PYTHONDONTWRITEBYTECODE=1 FLAGPROXY_DJANGO_DATABASE="$url" "$python" manage.py "$@")
}

sqlite_url="sqlite:///$tmp/schema.sqlite3"
manage "$sqlite_url" migrate --noinput -v 0
manage "$sqlite_url" dump_schema >"$tmp/sqlite.sql"

if ! $sqlite_only; then
  for tool in psql pg_dump; do
    command -v "$tool" >/dev/null ||
      { echo "regen_schema.sh: $tool not found; install the PostgreSQL client or pass --sqlite-only" >&2; exit 1; }
  done
  name=flagproxy_schema_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
  psql "$dsn" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$name\"" >/dev/null ||
    { echo "regen_schema.sh: cannot create a database through $dsn (set FLAGPROXY_TEST_POSTGRES_DSN, or pass --sqlite-only)" >&2; exit 1; }
  pg_db=$name
  pg_url=$("$python" -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1])._replace(path="/" + sys.argv[2]).geturl())' "$dsn" "$pg_db")
  manage "$pg_url" migrate --noinput -v 0
  manage "$pg_url" dump_schema >"$tmp/postgres.sql"
  cp "$tmp/postgres.sql" "$outdir/postgres.sql"
fi
cp "$tmp/sqlite.sql" "$outdir/sqlite.sql"
echo "regen_schema.sh: wrote $(if $sqlite_only; then echo sqlite.sql; else echo sqlite.sql postgres.sql; fi) to $outdir"
