package engine

// Uniform rules: a flag, switch or sample whose rule decides the same way
// for every visitor, which is what `flagproxy stale` reports once it has
// stayed so for long. Per library:
//
//   - waffle flag: everyone on (on) or off (off) whatever else the row
//     says; else, with everyone unset, a percentage of 100 or more (on:
//     every roll wins; a visitor still holding an old dwf_ cookie of
//     False keeps it until it expires); or no percentage (NULL or 0), no
//     user, group, staff, superuser, authenticated or language rule and
//     no testing mode (off);
//   - waffle switch: always (its active column);
//   - waffle sample: a percentage of 0 or less (off) or 100 or more (on);
//   - feature-flipper: always (its enabled column);
//   - FeatureFlag model: disabled (off); enabled with a rollout of 100 or
//     more (on); enabled with a rollout of 0 and no allowed users (off);
//   - django-flags: no conditions (off), or only boolean conditions and
//     unknown ones (which are always false), decided as they stand; a
//     flag whose conditions raise is not uniform (it is a bug, reported
//     elsewhere).
//
// Overrides (URL, session, WAFFLE_OVERRIDE, waffle's testing cookies) are
// per-visitor exceptions and do not count. A name defined by two sources
// (a conflict) is never uniform.

// FlagUniform reports whether the i-th flag is decided the same way for
// every visitor, and which way.
func (s *Snapshot) FlagUniform(i int) (on, ok bool) {
	if r := s.flags[i].rule; r != nil {
		return r.uniform()
	}
	return false, false
}

// SwitchUniform returns the i-th switch's value: a switch is always
// decided the same way for everyone.
func (s *Snapshot) SwitchUniform(i int) (on, ok bool) { return s.switches[i].Active, true }

// SampleUniform reports whether the i-th sample is decided the same way
// for everyone (0 % or 100 %), and which way.
func (s *Snapshot) SampleUniform(i int) (on, ok bool) {
	return uniformPercent(s.samples[i].Percent.Tenths)
}

// uniformPercent is a percentage (in tenths) that every roll loses or
// every roll wins.
func uniformPercent(tenths int32) (on, ok bool) {
	switch {
	case tenths <= 0:
		return false, true
	case tenths >= 1000:
		return true, true
	}
	return false, false
}

func (w *waffleRule) uniform() (on, ok bool) {
	switch {
	case w.Everyone != Unset:
		return w.Everyone == Yes, true
	case w.Percent.Valid && w.Percent.Tenths >= 1000:
		return true, true
	case w.Percent.Valid && w.Percent.Tenths > 0, w.Testing, w.Authenticated, w.Staff, w.Superusers,
		w.languages != nil, len(w.users) > 0, len(w.groups) > 0:
		return false, false
	}
	return false, true
}

func (f featureRule) uniform() (on, ok bool) { return f.enabled, true }

func (m *modelRule) uniform() (on, ok bool) {
	switch {
	case !m.Enabled:
		return false, true
	case m.RolloutPercent >= 100:
		return true, true
	case m.RolloutPercent <= 0 && len(m.allowed) == 0:
		return false, true
	}
	return false, false
}

func (f *djangoFlagRule) uniform() (on, ok bool) {
	if f.raises != "" {
		return false, false
	}
	for i := range f.conds {
		if k := f.conds[i].kind; k != condBoolean && k != condUnknown {
			return false, false
		}
	}
	d := f.decide(&Request{}, nil)
	return d.On, d.Reason != ReasonError
}
