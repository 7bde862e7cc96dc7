"""The waffle drop-in: django-waffle's models, answered from flagproxy's header.

Set in the site's settings::

    WAFFLE_FLAG_MODEL = 'flagproxy_django.Flag'
    WAFFLE_SWITCH_MODEL = 'flagproxy_django.Switch'
    WAFFLE_SAMPLE_MODEL = 'flagproxy_django.Sample'

and every ``waffle.flag_is_active``, ``switch_is_active``,
``sample_is_active`` (with waffle's decorators, mixins, template tags and
views, which call them) reaches these models through waffle's own
``get_waffle_*_model()``. In a request that carries flagproxy's header,
``get()`` builds an unsaved instance without a database query and
``is_active()`` answers from the header (flagproxy_django.waffle). Where no
header reached the code (outside a request, Django's test client), both are
waffle's own: the cache, the row, waffle's rules, and the tests' rows and
``waffle.testutils.override_flag`` work as before.

The models are unmanaged views of waffle's own tables (``waffle_flag``,
``waffle_flag_users``, ``waffle_flag_groups``, ``waffle_switch``,
``waffle_sample``): waffle's migrations keep creating and altering them
(waffle's migration state does not mark its models swappable, so Django
runs them even when the models are swapped out), waffle's management
commands and admin (see admin.py) write them, and flagproxy reads them.
"""
import copy

from waffle.models import AbstractBaseSample, AbstractBaseSwitch, AbstractUserFlag

from .decisions import current
from .waffle import header_answer, in_process


def _without_reverse_accessor(field_name):
    # waffle.Flag, when it is not swapped out, owns user.flag_set and
    # group.flag_set; this copy of its field must not clash with it.
    field = copy.deepcopy(AbstractUserFlag._meta.get_field(field_name))
    field.remote_field.related_name = '+'
    return field


def unmanage_through_tables():
    """Mark the automatic models of waffle_flag_users and waffle_flag_groups
    unmanaged, like Flag itself (Django makes them managed because User and
    Group are), so that they never clash with waffle.Flag's own."""
    for field in Flag._meta.local_many_to_many:
        field.remote_field.through._meta.managed = False


class HeaderModel:
    """get() and get_all() from the header; waffle's own without one."""

    #: The member of the header (and of Decisions) this model answers from.
    KIND = ''

    @classmethod
    def get(cls, name):
        """An unsaved instance (no query) in a request with a header, else waffle's get()."""
        if current().absent:
            return super().get(name)
        return cls.from_header(name)

    @classmethod
    def get_all(cls):
        """One instance for each name the header carries, else waffle's get_all().

        They have no ``modified`` time: waffle's ``waffle_status`` view
        reports ``last_modified`` as null for them.
        """
        decisions = current()
        if decisions.absent:
            return super().get_all()
        return [cls.from_header(name) for name in sorted(getattr(decisions, cls.KIND))]

    @classmethod
    def from_header(cls, name):
        """An unsaved instance standing for ``name`` in the header."""
        obj = cls(name=name, created=None, modified=None)
        obj.from_flagproxy = True
        return obj

    def waffle_row(self):
        """This instance, or the row waffle's get() finds when this one
        only stands for a name in a header."""
        if getattr(self, 'from_flagproxy', False):
            return super(HeaderModel, type(self)).get(self.name)
        return self


class Flag(HeaderModel, AbstractUserFlag):
    """waffle's Flag on the ``waffle_flag`` table, answered from the header."""

    KIND = 'flags'

    groups = _without_reverse_accessor('groups')
    users = _without_reverse_accessor('users')

    class Meta(AbstractUserFlag.Meta):
        managed = False
        db_table = 'waffle_flag'

    def is_active(self, request, read_only=False):
        decisions = current(request)
        if in_process(decisions, self.KIND, self.name):
            return AbstractUserFlag.is_active(self.waffle_row(), request, read_only=read_only)
        return header_answer(decisions, self.KIND, self.name, request)


class Switch(HeaderModel, AbstractBaseSwitch):
    """waffle's Switch on the ``waffle_switch`` table, answered from the header."""

    KIND = 'switches'

    class Meta(AbstractBaseSwitch.Meta):
        managed = False
        db_table = 'waffle_switch'

    def is_active(self):
        decisions = current()
        if in_process(decisions, self.KIND, self.name):
            return AbstractBaseSwitch.is_active(self.waffle_row())
        return header_answer(decisions, self.KIND, self.name)


class Sample(HeaderModel, AbstractBaseSample):
    """waffle's Sample on the ``waffle_sample`` table, answered from the header."""

    KIND = 'samples'

    class Meta(AbstractBaseSample.Meta):
        managed = False
        db_table = 'waffle_sample'

    def is_active(self):
        decisions = current()
        if in_process(decisions, self.KIND, self.name):
            return AbstractBaseSample.is_active(self.waffle_row())
        return header_answer(decisions, self.KIND, self.name)
