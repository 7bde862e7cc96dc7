"""URLs of the test views."""
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from flagproxy_django.djflags import FlaggedTemplateView

from tests import views

urlpatterns = [
    path('report/', views.report),
    path('async/', views.async_report),
    path('template/', views.template_view),
    path('reads/', views.reads),
    path('wafflejs/', views.wafflejs),
    path('target/', views.target, name='target'),
    path('target/<int:n>/', views.target, name='target-with-arg'),
    path('flagged/', views.flagged),
    path('flagged/<int:n>/', views.flagged_redirect_args),
    path('not-flagged/', views.not_flagged),
    path('flagged-redirect/', views.flagged_redirect),
    path('flagged-bad-redirect/', views.flagged_bad_redirect),
    path('switched/', views.switched),
    path('not-switched/', views.not_switched),
    path('switched-redirect/', views.switched_redirect),
    path('flag-view/', views.FlagView.as_view()),
    path('not-flag-view/', views.NotFlagView.as_view()),
    path('switch-view/', views.SwitchView.as_view()),
    path('sample-view/', views.SampleView.as_view()),
    path('flags/report/', views.djflags_report),
    path('flags/template/', views.djflags_template),
    path('flags/check/', views.flag_checked),
    path('flags/check-off/', views.flag_checked_off),
    path('flags/check-fallback/', views.flag_checked_fallback),
    path('flags/check-fallback/<int:n>/', views.flag_checked_fallback),
    path('flags/required/', views.flag_required),
    path('flags/required-unset/', views.flag_required_unset),
    path('flags/required-fallback/', views.flag_required_fallback),
    path('flags/view/', views.BetaView.as_view()),
    path('flags/no-view/', views.NoBetaView.as_view()),
    path('flags/view-kwargs/', views.BetaView.as_view(flag_name='other', state=False)),
    path('flags/template-view/', FlaggedTemplateView.as_view(
        flag_name='beta', template_name='djflags.html', extra_context={'name': 'beta'}, fallback=views.fallback)),
]

# The waffle drop-in: views on waffle's own API, waffle's views, the admin.
if settings.HAVE_WAFFLE:
    from tests import waffle_views

    urlpatterns += [
        path('dropin/report/', waffle_views.report),
        path('dropin/decorated/', waffle_views.decorated),
        path('dropin/mixed/', waffle_views.Mixed.as_view()),
        path('waffle/', include('waffle.urls')),
        path('admin/', admin.site.urls),
    ]
