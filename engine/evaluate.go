package engine

import (
	"crypto/sha256"
	"slices"
)

// Evaluate decides every flag, switch and sample of the snapshot for one
// request. rnd supplies waffle's random rolls (percentage flags without a
// cookie, samples); it is the only source of non-determinism.
//
// Precedence, lowest first: the flag's own library rules (for waffle flags
// this includes waffle's own WAFFLE_OVERRIDE parameter, testing mode and the
// dwf_ cookie, exactly as waffle orders them), then the visitor's stored
// session override, then the URL override of this request.
func (s *Snapshot) Evaluate(r *Request, rnd Rand) Decisions {
	d := Decisions{
		Flags:    make([]Decision, len(s.flags)),
		Switches: make([]Decision, len(s.switches)),
		Samples:  make([]Decision, len(s.samples)),
	}
	var tests []Cookie
	for i := range s.flags {
		f := &s.flags[i]
		switch {
		case f.waffle != nil:
			d.Flags[i] = s.decideWaffle(f.waffle, r, rnd, &d.Cookies, &tests)
		case f.feature != nil:
			d.Flags[i] = Decision{On: f.feature.Enabled, Reason: ReasonActive}
		case f.model != nil:
			d.Flags[i] = f.model.decide(&r.Subject)
		default:
			d.Flags[i] = Decision{Reason: ReasonConflict}
		}
		if on, ok := r.Overrides.Session[f.name]; ok {
			d.Flags[i] = Decision{On: on, Reason: ReasonOverrideSession}
		}
		if on, ok := r.Overrides.URL[f.name]; ok {
			d.Flags[i] = Decision{On: on, Reason: ReasonOverrideURL}
		}
	}
	d.Cookies = append(d.Cookies, tests...)
	for i, sw := range s.switches {
		d.Switches[i] = Decision{On: sw.Active, Reason: ReasonActive}
	}
	for i, sm := range s.samples {
		d.Samples[i] = Decision{On: rnd.Float64()*100 <= sm.Percent.Float(), Reason: ReasonSample}
	}
	return d
}

// decideWaffle is django-waffle 3.0's Flag.is_active(request) for a request
// that has a user (spec/waffle.md §2.2). The flag exists, so step 0 does not
// apply; cookies the middleware would write are appended to percent and tests.
func (s *Snapshot) decideWaffle(w *waffleRule, r *Request, rnd Rand, percent, tests *[]Cookie) Decision {
	// Step 1: WAFFLE_OVERRIDE.
	if s.waffle.Override {
		if v, ok := get(r.Query, w.Name); ok {
			return Decision{On: v == "1", Reason: ReasonOverride}
		}
	}
	// Step 2: everyone.
	switch w.Everyone {
	case Yes:
		return Decision{On: true, Reason: ReasonEveryone}
	case No:
		return Decision{On: false, Reason: ReasonEveryone}
	}
	// Step 3: testing mode.
	if w.Testing {
		reason := ReasonTestingQuery
		v, ok := get(r.Query, w.testCookie)
		if !ok {
			reason = ReasonTestingHeader
			v, ok = get(r.Header, w.testHeader)
		}
		if ok {
			on := v == "1"
			*tests = append(*tests, Cookie{Name: w.testCookie, Value: pyBool(on)})
			return Decision{On: on, Reason: reason}
		}
		if v, ok := get(r.Cookies, w.testCookie); ok {
			return Decision{On: v == "True", Reason: ReasonTestingCookie}
		}
	}
	// Step 4: languages.
	if w.languages != nil && r.HasLanguage && slices.Contains(w.languages, r.Language) {
		return Decision{On: true, Reason: ReasonLanguage}
	}
	// Step 5: the user.
	u := &r.Subject
	switch {
	case w.Authenticated && u.Authenticated:
		return Decision{On: true, Reason: ReasonAuthenticated}
	case w.Staff && u.Staff:
		return Decision{On: true, Reason: ReasonStaff}
	case w.Superusers && u.Superuser:
		return Decision{On: true, Reason: ReasonSuperuser}
	}
	if u.UserID != "" {
		if _, ok := w.users[u.UserID]; ok {
			return Decision{On: true, Reason: ReasonUser}
		}
	}
	if len(w.groups) > 0 && u.inGroups(w.groups) {
		return Decision{On: true, Reason: ReasonGroup}
	}
	// Step 6: percentage, made sticky by the dwf_ cookie.
	if w.Percent.Valid && w.Percent.Tenths > 0 {
		var d Decision
		if v, ok := get(r.Cookies, w.cookie); ok {
			d = Decision{On: v == "True", Reason: ReasonPercentCookie}
		} else {
			d = Decision{On: rnd.Float64()*100 <= w.Percent.Float(), Reason: ReasonPercentRoll}
		}
		c := Cookie{Name: w.cookie, Value: pyBool(d.On), MaxAge: s.waffle.MaxAge, Secure: s.waffle.Secure}
		if w.Rollout && !d.On {
			c.MaxAge = 0
		}
		*percent = append(*percent, c)
		return d
	}
	return Decision{Reason: ReasonNoMatch}
}

// decide is the FeatureFlag model's is_enabled(key, user)
// (spec/featureflag-model.md §3), with "no user" meaning not authenticated.
func (m *modelRule) decide(u *Subject) Decision {
	if !m.Enabled {
		return Decision{Reason: ReasonDisabled}
	}
	if u.Authenticated && u.UserID != "" {
		if _, ok := m.allowed[u.UserID]; ok {
			return Decision{On: true, Reason: ReasonUser}
		}
	}
	if m.RolloutPercent >= 100 {
		return Decision{On: true, Reason: ReasonRollout}
	}
	if !u.Authenticated || u.UserID == "" {
		return Decision{Reason: ReasonNoMatch}
	}
	return Decision{On: int64(Bucket(m.Key, u.UserID)) < m.RolloutPercent, Reason: ReasonBucket}
}

// Bucket returns the FeatureFlag model's rollout bucket for a key and a
// user's primary key (as text): SHA-256 of "key:pk", read as a big-endian
// 256-bit integer, modulo 100.
func Bucket(key, userPK string) int {
	buf := make([]byte, 0, len(key)+1+len(userPK))
	buf = append(append(append(buf, key...), ':'), userPK...)
	sum := sha256.Sum256(buf)
	r := 0
	for _, b := range sum {
		r = (r*256 + int(b)) % 100
	}
	return r
}

func get(v Values, name string) (string, bool) {
	if v == nil {
		return "", false
	}
	return v.Get(name)
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}
