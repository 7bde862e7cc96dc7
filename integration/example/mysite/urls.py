from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path('', include('pages.urls')),
    # Django's own login and logout views (templates in pages/templates/registration/).
    path('accounts/', include('django.contrib.auth.urls')),
    # Flip flags here: waffle's Flags and Switches, and (pages/admin.py)
    # feature-flipper Features and FeatureFlags. alice may, see the README.
    path('admin/', admin.site.urls),
]
