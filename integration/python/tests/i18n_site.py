"""A URLconf with i18n_patterns and a LocaleMiddleware subclass, for the settings command."""
from django.conf.urls.i18n import i18n_patterns
from django.middleware.locale import LocaleMiddleware
from django.urls import path

from tests import views


class SiteLocaleMiddleware(LocaleMiddleware):
    """A site's own LocaleMiddleware."""


class RulesLocaleMiddleware(LocaleMiddleware):
    """A LocaleMiddleware with its own rules for the language."""

    def process_request(self, request):
        super().process_request(request)


urlpatterns = i18n_patterns(path('report/', views.report), prefix_default_language=False)
