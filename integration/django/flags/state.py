"""django-flags' enable_flag and disable_flag, for the test site's FlagState.

django-flags cannot be installed here (see models.FlagState), so its two
writers are reproduced from ``flags.state`` of django-flags 5.2
(spec/django-flags.md section 7): the flag must be known to a source (the
FLAGS setting or a flags_flagstate row), else KeyError; the first
database-sourced ``boolean`` condition of the flag, in database order, gets
the value ``True`` or ``False``; without one, a row (name, boolean, True,
required false) is created first, unless create_boolean_condition is false
(then ValueError). Settings conditions are never touched, so disabling a
flag that another true non-required condition keeps on leaves it on.

Reading flags (flag_state and friends) is not reproduced: a site behind
flagproxy reads them with flagproxy_django.djflags.
"""
from django.conf import settings

from flags.models import FlagState


def _set_flag_state(flag_name, state, create_boolean_condition=True):
    rows = list(FlagState.objects.filter(name=flag_name))
    if flag_name not in (getattr(settings, 'FLAGS', None) or {}) and not rows:
        raise KeyError(f'No flag with name {flag_name} exists')
    row = next((r for r in rows if r.condition == 'boolean'), None)
    if row is None:
        if not create_boolean_condition:
            raise ValueError(f'Flag {flag_name} does not have a boolean condition')
        row = FlagState.objects.create(name=flag_name, condition='boolean', value='True')
    row.value = state
    row.save()


def enable_flag(flag_name, create_boolean_condition=True, request=None):
    """Add or set a boolean condition to ``True``."""
    _set_flag_state(flag_name, True, create_boolean_condition=create_boolean_condition)


def disable_flag(flag_name, create_boolean_condition=True, request=None):
    """Add or set a boolean condition to ``False``."""
    _set_flag_state(flag_name, False, create_boolean_condition=create_boolean_condition)
