package engine

// evaluation is the state of one Evaluate call that rules share.
type evaluation struct {
	rnd Rand
	// percent and tests collect the cookies waffle's middleware would
	// write: percentage cookies in flag order, then testing cookies.
	percent, tests []Cookie
}

// Evaluate decides every flag, switch and sample of the snapshot for one
// request. rnd supplies waffle's random rolls (percentage flags without a
// cookie, samples); it is the only source of non-determinism.
//
// Precedence, lowest first: the flag's own library rules (for waffle flags
// this includes waffle's own WAFFLE_OVERRIDE parameter, testing mode and the
// dwf_ cookie, exactly as waffle orders them), then the visitor's stored
// session override, then the URL override of this request.
func (s *Snapshot) Evaluate(r *Request, rnd Rand) Decisions {
	all := make([]Decision, len(s.flags)+len(s.switches)+len(s.samples))
	nf, ns := len(s.flags), len(s.switches)
	d := Decisions{Flags: all[:nf:nf], Switches: all[nf : nf+ns : nf+ns], Samples: all[nf+ns:]}
	e := evaluation{rnd: rnd}
	if s.cookies > 0 {
		e.percent = make([]Cookie, 0, s.cookies)
	}
	for i := range s.flags {
		d.Flags[i] = s.decideFlag(i, r, &e)
	}
	if len(e.percent)+len(e.tests) > 0 {
		d.Cookies = append(e.percent, e.tests...)
	}
	for i, sw := range s.switches {
		d.Switches[i] = Decision{On: sw.Active, Reason: ReasonActive}
	}
	for i, sm := range s.samples {
		d.Samples[i] = Decision{On: rnd.Float64()*100 <= sm.Percent.Float(), Reason: ReasonSample}
	}
	return d
}

// decideFlag decides the i-th flag: its library's rule (off for a
// conflict), then the session override, then the URL override.
func (s *Snapshot) decideFlag(i int, r *Request, e *evaluation) Decision {
	f := &s.flags[i]
	d := Decision{Reason: ReasonConflict}
	if f.rule != nil {
		d = f.rule.decide(r, e)
	}
	if on, ok := r.Overrides.Session[f.name]; ok {
		d = Decision{On: on, Reason: ReasonOverrideSession}
	}
	if on, ok := r.Overrides.URL[f.name]; ok {
		d = Decision{On: on, Reason: ReasonOverrideURL}
	}
	return d
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
