"""URLs of the test views."""
from django.urls import path

from tests import views

urlpatterns = [
    path('report/', views.report),
    path('async/', views.async_report),
    path('template/', views.template_view),
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
]
