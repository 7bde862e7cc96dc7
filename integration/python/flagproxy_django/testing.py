"""Forcing flags, switches and samples in a site's own tests.

::

    from flagproxy_django.testing import override_flags

    @override_flags(flags={'new_checkout': True}, switches={'maintenance': False})
    class CheckoutTests(TestCase):
        ...

    @override_flags(samples={'survey': True})
    def test_survey(self):
        ...

    with override_flags(flags={'new_checkout': False}):
        ...

No header and no database row is needed: the middleware (``request.features``,
``request.features_panel``, ``request.flagproxy``), ``flag_is_active``,
``switch_is_active``, ``sample_is_active``, django-flags' ``flag_state``,
``flag_enabled`` and ``flag_disabled`` (flags), the decorators, mixins,
views, template tags and context processor all see the forced values, on
top of whatever a header says. The panel reports their source as ``"test"``. Overrides nest;
the innermost wins. Names not forced keep their usual value (the header's,
else the default).
"""
from django.test.utils import TestContextDecorator

from .decisions import ForcedValues, pop_forced, push_forced

__all__ = ['override_flags']


def _checked(kind, values):
    values = dict(values or {})
    for name, value in values.items():
        if not isinstance(name, str) or not isinstance(value, bool):
            raise TypeError(f'override_flags({kind}=…) maps names to True or False, not {name!r}: {value!r}')
    return values


class override_flags(TestContextDecorator):  # noqa: N801 (named like override_settings)
    """Force flag, switch and sample values (each a dict name -> bool).

    Usable as a context manager and as a decorator of test functions,
    methods (sync or async) and TestCase classes, like Django's
    override_settings.
    """

    def __init__(self, flags=None, switches=None, samples=None):
        super().__init__()
        self.values = ForcedValues(
            flags=_checked('flags', flags), switches=_checked('switches', switches),
            samples=_checked('samples', samples))

    def enable(self):
        push_forced(self.values)

    def disable(self):
        pop_forced(self.values)
