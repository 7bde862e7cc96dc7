"""``flags.state``'s readers, from flagproxy's header."""
from flagproxy_django.djflags import flag_disabled, flag_enabled, flag_state

__all__ = ['flag_state', 'flag_enabled', 'flag_disabled']
