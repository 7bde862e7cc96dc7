from django.urls import include, path

from testsite import views as testsite_views
from waffleshop import views

urlpatterns = [
    path('echo/', testsite_views.echo),
    path('login/', testsite_views.login_view),
    path('checkout/', views.checkout),
    path('beta/', views.beta),
    path('', include('waffle.urls')),
]
