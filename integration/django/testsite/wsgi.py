"""WSGI entry point of the flagproxy test site (gunicorn testsite.wsgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'testsite.settings')

application = get_wsgi_application()
