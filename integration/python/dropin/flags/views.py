"""``flags.views``, from flagproxy's header."""
from flagproxy_django.djflags import FlaggedTemplateView, FlaggedViewMixin

__all__ = ['FlaggedViewMixin', 'FlaggedTemplateView']
