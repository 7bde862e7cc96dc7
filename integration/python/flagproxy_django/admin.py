"""The waffle drop-in's admin: waffle's own admin pages for flagproxy's models.

Django's admin ignores waffle's registrations of a swapped-out model, so
when WAFFLE_FLAG_MODEL (…SWITCH…, …SAMPLE…) names flagproxy's model, it is
registered here with waffle's own FlagAdmin (SwitchAdmin, SampleAdmin),
unless WAFFLE_ENABLE_ADMIN_PAGES is False. The pages edit waffle's tables.
Staff keep the permissions they had on waffle's models
(``waffle.change_flag`` …) as well as flagproxy's own
(``flagproxy_django.change_flag`` …).
"""
from django.apps import apps
from django.contrib import admin

from .waffle import KINDS, waffle_dropin_installed


class WafflePermissionsMixin:
    """Grants each action to those who hold it on waffle's model too."""

    def _waffle_perm(self, request, action):
        return request.user.has_perm(f'waffle.{action}_{self.opts.model_name}')

    def has_module_permission(self, request):
        return super().has_module_permission(request) or request.user.has_module_perms('waffle')

    def has_view_permission(self, request, obj=None):
        return (super().has_view_permission(request, obj) or self._waffle_perm(request, 'view')
                or self._waffle_perm(request, 'change'))

    def has_add_permission(self, request):
        return super().has_add_permission(request) or self._waffle_perm(request, 'add')

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) or self._waffle_perm(request, 'change')

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) or self._waffle_perm(request, 'delete')


def register_dropin(site=admin.site):
    """Register the drop-in models that waffle's settings name, with waffle's admin classes."""
    from waffle import admin as waffle_admin
    from waffle.utils import get_setting

    if not get_setting('ENABLE_ADMIN_PAGES'):
        return
    classes = {'flags': waffle_admin.FlagAdmin, 'switches': waffle_admin.SwitchAdmin,
               'samples': waffle_admin.SampleAdmin}
    for kind, base in classes.items():
        model = apps.get_model(KINDS[kind][1])
        if waffle_dropin_installed(kind) and not site.is_registered(model):
            site.register(model, type(base.__name__, (WafflePermissionsMixin, base), {}))


if apps.is_installed('waffle'):
    register_dropin()
