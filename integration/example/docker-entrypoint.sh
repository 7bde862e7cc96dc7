#!/bin/sh
# Start-up of the example site's container: prepare the database and
# flagproxy's settings file, then run the command (gunicorn by default).
set -eu

python3 manage.py migrate --noinput

# Load the example users and flags into an empty database only, so that
# what you change in the admin survives a restart.
if python3 manage.py shell -c 'import sys; from django.contrib.auth.models import User; sys.exit(User.objects.exists())'; then
    python3 manage.py loaddata example
fi

# flagproxy reads the site's settings (SECRET_KEY, session and waffle
# settings) from this file, written from the real settings, so the proxy
# and the site cannot disagree.
if [ -n "${FLAGPROXY_SETTINGS_FILE:-}" ]; then
    python3 manage.py flagproxy_settings -o "$FLAGPROXY_SETTINGS_FILE"
fi

exec "$@"
