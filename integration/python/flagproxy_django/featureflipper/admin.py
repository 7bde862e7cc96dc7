"""feature-flipper's admin: name, description, status, and three bulk actions."""
from django.contrib import admin

from .models import Feature


def _each(method, description):
    def action(modeladmin, request, queryset):
        for feature in queryset:
            getattr(feature, method)()
            feature.save()
    action.short_description = description
    action.__name__ = f'{method}_features'
    return action


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = ('name', 'description', 'status')
    actions = [_each('enable', 'Enable selected features'), _each('disable', 'Disable selected features'),
               _each('flip', 'Flip selected features')]
