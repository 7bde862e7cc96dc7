from django.contrib import admin
from django.urls import path

from testsite import views

urlpatterns = [
    path('', views.echo),
    path('echo/', views.echo),
    path('login/', views.login_view),
    path('logout/', views.logout_view),
    path('feature_status/', views.feature_status_view),
    path('waffle/', views.waffle_view),
    path('session/', views.session_view),
    path('djflags/<str:name>/', views.djflags_view),
    path('admin/', admin.site.urls),
    path('reads/', views.reads_view),
]

# For gunicorn_test.go: a large page, a view that reads the request body,
# and one that shows every HTTP_* key Django saw.
urlpatterns += [
    path('bigpage/', views.bigpage_view),
    path('upload/', views.upload_view),
    path('meta/', views.meta_view),
]
