"""``{% load feature_flags %}``: django-flags' tags, from flagproxy's header."""
from flagproxy_django.templatetags.flagproxy_flags import flag_disabled, flag_enabled, register

__all__ = ['register', 'flag_enabled', 'flag_disabled']
