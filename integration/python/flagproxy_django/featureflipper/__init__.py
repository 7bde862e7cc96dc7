"""django-feature-flipper's model, admin and management commands for today's Django.

For a site that keeps feature-flipper's table (``featureflipper_feature``)
behind flagproxy: add ``'flagproxy_django.featureflipper'`` to
INSTALLED_APPS in place of the 2010 ``featureflipper`` app (Python 2 only).
The app label is ``featureflipper``, so the table, the permission
``featureflipper.can_flip_with_url`` and its content type are the
original's. On a database whose table syncdb made, run ``manage.py migrate
featureflipper --fake-initial``.

Reading features is flagproxy's: ``request.features``, the ``features``
context variable and ``{% load feature_tag %}`` come from the header
(flagproxy_django's middleware, context processor and tag library); this
app only edits the rows, through the ORM, which flagproxy then loads.
"""
