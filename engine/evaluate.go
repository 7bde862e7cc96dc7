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
	buf := s.cookieBuffer(&e)
	for i := range s.flags {
		d.Flags[i] = s.decideFlag(i, r, &e)
	}
	d.Cookies = e.cookies(buf)
	for i, sw := range s.switches {
		d.Switches[i] = Decision{On: sw.Active, Reason: ReasonActive}
	}
	s.DrawSamples(d.Samples, rnd)
	return d
}

// DrawSamples decides every sample into d (parallel to SampleNames) with
// fresh draws from rnd, as Evaluate does after the flags: samples are
// random on every request, so a caller reusing an earlier evaluation's
// flags and switches draws its samples anew.
func (s *Snapshot) DrawSamples(d []Decision, rnd Rand) {
	for i, sm := range s.samples {
		d[i] = Decision{On: rnd.Float64()*100 <= sm.Percent.Float(), Reason: ReasonSample}
	}
}

// testCookieRoom is how many testing cookies Evaluate makes room for
// beside the percentage cookies: a request asks for few, if any.
const testCookieRoom = 4

// cookieBuffer gives e one list for the cookies of an evaluation:
// percentage cookies from the start, testing cookies after room for all
// of those. Evaluate allocates it once; nil when no rule writes cookies.
func (s *Snapshot) cookieBuffer(e *evaluation) []Cookie {
	n := s.cookies + min(s.tests, testCookieRoom)
	if n == 0 {
		return nil
	}
	buf := make([]Cookie, 0, n+1) // and room for a caller's own (see Decisions.Cookies)
	e.percent = buf[:0:s.cookies]
	e.tests = buf[s.cookies:s.cookies]
	return buf
}

// cookies returns the percentage cookies, then the testing cookies, in
// buf (from cookieBuffer) unless one part outgrew its room; nil for none.
func (e *evaluation) cookies(buf []Cookie) []Cookie {
	n := len(e.percent)
	switch {
	case n+len(e.tests) == 0:
		return nil
	case n == 0:
		return e.tests
	case cap(buf) > 0 && &e.percent[0] == &buf[:1][0]:
		// Moves the tests down, in place; the list keeps buf's room.
		return append(buf[:n], e.tests...)
	}
	return append(e.percent, e.tests...)
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
