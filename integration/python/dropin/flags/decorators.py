"""``flags.decorators``, from flagproxy's header."""
from flagproxy_django.djflags import flag_check, flag_required

__all__ = ['flag_check', 'flag_required']
