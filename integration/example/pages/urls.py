from django.urls import path

from pages import views

urlpatterns = [
    path('', views.home, name='home'),
    path('staff/', views.staff_tools, name='staff_tools'),
    path('flags/', views.flags, name='flags'),
]
