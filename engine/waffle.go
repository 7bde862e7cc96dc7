package engine

import (
	"fmt"
	"slices"
	"strings"
)

// WaffleFlag is one row of waffle_flag (or of a swapped-in flag model's
// table) together with the ids linked to it through the M2M tables.
type WaffleFlag struct {
	Name          string   `json:"name"`
	Everyone      Tristate `json:"everyone"`
	Percent       Percent  `json:"percent"`
	Testing       bool     `json:"testing,omitempty"`
	Superusers    bool     `json:"superusers,omitempty"`
	Staff         bool     `json:"staff,omitempty"`
	Authenticated bool     `json:"authenticated,omitempty"`
	Rollout       bool     `json:"rollout,omitempty"`
	Languages     string   `json:"languages,omitempty"`
	// Users holds the primary keys of the linked users, as text (see
	// Subject.UserID).
	Users []string `json:"users,omitempty"`
	// Groups holds the ids of the linked auth_group rows.
	Groups []int64 `json:"groups,omitempty"`
	Info
}

// Switch is one row of waffle_switch.
type Switch struct {
	Name   string `json:"name"`
	Active bool   `json:"active"`
	Info
}

// Sample is one row of waffle_sample.
type Sample struct {
	Name    string  `json:"name"`
	Percent Percent `json:"percent"`
	Info
}

// WaffleSettings holds the WAFFLE_* settings that change decisions or the
// cookies waffle writes. The zero value is not waffle's default: use
// DefaultWaffleSettings.
type WaffleSettings struct {
	FlagDefault   bool   `json:"WAFFLE_FLAG_DEFAULT"`
	SwitchDefault bool   `json:"WAFFLE_SWITCH_DEFAULT"`
	SampleDefault bool   `json:"WAFFLE_SAMPLE_DEFAULT"`
	Override      bool   `json:"WAFFLE_OVERRIDE"`
	Cookie        string `json:"WAFFLE_COOKIE"`      // a pattern with one %s
	TestCookie    string `json:"WAFFLE_TEST_COOKIE"` // a pattern with one %s
	Secure        bool   `json:"WAFFLE_SECURE"`
	MaxAge        int    `json:"WAFFLE_MAX_AGE"` // seconds
}

// DefaultWaffleSettings returns django-waffle's defaults (waffle.defaults in
// 3.0 through 5.0).
func DefaultWaffleSettings() WaffleSettings {
	return WaffleSettings{
		Cookie:     "dwf_%s",
		TestCookie: "dwft_%s",
		Secure:     true,
		MaxAge:     2592000,
	}
}

// check reports settings waffle's middleware could not work with.
func (ws WaffleSettings) check() error {
	if err := checkPattern("WAFFLE_COOKIE", ws.Cookie); err != nil {
		return err
	}
	if err := checkPattern("WAFFLE_TEST_COOKIE", ws.TestCookie); err != nil {
		return err
	}
	if ws.MaxAge <= 0 {
		return fmt.Errorf("%w: WAFFLE_MAX_AGE %d: only a positive number of seconds is supported", ErrInvalidSnapshot, ws.MaxAge)
	}
	return nil
}

func (ws WaffleSettings) digest(h *digester) {
	h.flag(ws.FlagDefault)
	h.flag(ws.SwitchDefault)
	h.flag(ws.SampleDefault)
	h.flag(ws.Override)
	h.flag(ws.Secure)
	h.str(ws.Cookie)
	h.str(ws.TestCookie)
	h.num(int64(ws.MaxAge))
}

// waffleRule is one waffle flag, indexed for deciding.
type waffleRule struct {
	WaffleFlag
	ws         *WaffleSettings
	languages  []string // nil when the column is empty
	users      map[string]struct{}
	groups     map[int64]struct{}
	cookie     string // WAFFLE_COOKIE % name
	testCookie string // WAFFLE_TEST_COOKIE % name
	testHeader string // testCookie with '_' turned into '-'
}

// buildWaffle makes a rule of every waffle flag in d.
func buildWaffle(d *Data) (built, error) {
	ws := d.Waffle
	var b built
	for _, f := range d.WaffleFlags {
		w := &waffleRule{WaffleFlag: f, ws: &ws, users: set(f.Users), groups: set(f.Groups)}
		w.Users, w.Groups = slices.Clone(f.Users), slices.Clone(f.Groups)
		if f.Languages != "" {
			for _, l := range strings.Split(f.Languages, ",") {
				w.languages = append(w.languages, pyStrip(l))
			}
		}
		w.cookie = pyFormat(ws.Cookie, f.Name)
		w.testCookie = pyFormat(ws.TestCookie, f.Name)
		w.testHeader = strings.ReplaceAll(w.testCookie, "_", "-")
		b.rules = append(b.rules, namedRule{f.Name, w})
		if f.Percent.Valid && f.Percent.Tenths > 0 {
			b.cookies++
		}
		if f.Testing {
			b.tests++
		}
	}
	return b, nil
}

// headers names the testing header, for a flag in testing mode.
func (w *waffleRule) headers() []string {
	if w.Testing {
		return []string{w.testHeader}
	}
	return nil
}

func (w *waffleRule) inputs() Inputs {
	var in Inputs
	if w.ws.Override || w.Testing {
		in |= InputQuery
	}
	if w.Testing {
		in |= InputHeader | InputCookies
	}
	if w.Percent.Valid && w.Percent.Tenths > 0 {
		in |= InputCookies
	}
	if w.Languages != "" {
		in |= InputLanguage
	}
	return in
}

func (w *waffleRule) digest(h *digester) {
	h.num(int64(w.Everyone))
	h.flag(w.Percent.Valid)
	h.num(int64(w.Percent.Tenths))
	h.flag(w.Testing)
	h.flag(w.Superusers)
	h.flag(w.Staff)
	h.flag(w.Authenticated)
	h.flag(w.Rollout)
	h.str(w.Languages)
	users := slices.Clone(w.Users)
	slices.Sort(users)
	h.strs(users)
	groups := slices.Clone(w.Groups)
	slices.Sort(groups)
	h.num(int64(len(groups)))
	for _, g := range groups {
		h.num(g)
	}
}

// decide is django-waffle 3.0's Flag.is_active(request) for a request that
// has a user (spec/waffle.md §2.2). The flag exists, so step 0 does not
// apply; the cookies the middleware would write go to e.
func (w *waffleRule) decide(r *Request, e *evaluation) Decision {
	// Step 1: WAFFLE_OVERRIDE.
	if w.ws.Override {
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
		if d, ok := w.testing(r, e); ok {
			return d
		}
	}
	// Step 4: languages.
	if w.languages != nil && r.HasLanguage && slices.Contains(w.languages, r.Language) {
		return Decision{On: true, Reason: ReasonLanguage}
	}
	// Step 5: the user.
	if d, ok := w.user(&r.Subject); ok {
		return d
	}
	// Step 6: percentage, made sticky by the dwf_ cookie.
	if w.Percent.Valid && w.Percent.Tenths > 0 {
		return w.percent(r, e)
	}
	return Decision{Reason: ReasonNoMatch}
}

// testing is step 3: the dwft_ parameter, header or cookie.
func (w *waffleRule) testing(r *Request, e *evaluation) (Decision, bool) {
	reason := ReasonTestingQuery
	v, ok := get(r.Query, w.testCookie)
	if !ok {
		reason = ReasonTestingHeader
		v, ok = get(r.Header, w.testHeader)
	}
	if ok {
		on := v == "1"
		e.tests = append(e.tests, Cookie{Flag: w.Name, Name: w.testCookie, Value: pyBool(on)})
		return Decision{On: on, Reason: reason}, true
	}
	if v, ok := get(r.Cookies, w.testCookie); ok {
		return Decision{On: v == "True", Reason: ReasonTestingCookie}, true
	}
	return Decision{}, false
}

// user is step 5: the user's flags, primary key and groups.
func (w *waffleRule) user(u *Subject) (Decision, bool) {
	switch {
	case w.Authenticated && u.Authenticated:
		return Decision{On: true, Reason: ReasonAuthenticated}, true
	case w.Staff && u.Staff:
		return Decision{On: true, Reason: ReasonStaff}, true
	case w.Superusers && u.Superuser:
		return Decision{On: true, Reason: ReasonSuperuser}, true
	}
	if u.UserID != "" {
		if _, ok := w.users[u.UserID]; ok {
			return Decision{On: true, Reason: ReasonUser}, true
		}
	}
	if len(w.groups) > 0 && u.inGroups(w.groups) {
		return Decision{On: true, Reason: ReasonGroup}, true
	}
	return Decision{}, false
}

// percent is step 6: the dwf_ cookie, else a fresh roll, and the cookie
// that makes it sticky.
func (w *waffleRule) percent(r *Request, e *evaluation) Decision {
	var d Decision
	v, had := get(r.Cookies, w.cookie)
	if had {
		d = Decision{On: v == "True", Reason: ReasonPercentCookie}
	} else {
		d = Decision{On: e.rnd.Float64()*100 <= w.Percent.Float(), Reason: ReasonPercentRoll}
	}
	c := Cookie{Flag: w.Name, Name: w.cookie, Value: pyBool(d.On), MaxAge: w.ws.MaxAge, Secure: w.ws.Secure, Refresh: had && v == pyBool(d.On)}
	if w.Rollout && !d.On {
		c.MaxAge = 0
	}
	e.percent = append(e.percent, c)
	return d
}

// checkPattern accepts what Python's "pattern % name" accepts for a str name:
// exactly one %s, and %% for a literal percent sign.
func checkPattern(setting, p string) error {
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		if i+1 < len(p) && p[i+1] == '%' {
			i++
			continue
		}
		if i+1 < len(p) && p[i+1] == 's' {
			n++
			i++
			continue
		}
		return fmt.Errorf("%w: %s %q: only %%s and %%%% may follow %%", ErrInvalidSnapshot, setting, p)
	}
	if n != 1 {
		return fmt.Errorf("%w: %s %q must contain %%s exactly once", ErrInvalidSnapshot, setting, p)
	}
	return nil
}

// pyFormat renders a pattern accepted by checkPattern with name.
func pyFormat(p, name string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+1 < len(p) {
			i++
			if p[i] == 's' {
				b.WriteString(name)
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}
