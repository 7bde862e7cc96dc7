//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flagproxy/flagproxy/engine"
	"github.com/flagproxy/flagproxy/proxy"
)

// TestWaffleDifferential asks django-waffle itself and flagproxy the same
// questions and compares the answers. A generator makes random worlds
// (flags with every column, switches, samples, users, groups and their
// memberships) in the site's database and random requests (sessions,
// percentage and testing cookies, query strings with testing and override
// parameters, testing headers, language cookies and Accept-Language). Each
// request goes through flagproxy to the test site's /waffle/ view, which
// evaluates every flag, switch and sample with waffle in-process (as
// /wafflejs does) and renders the cookies waffle's middleware would write;
// the test compares them with flagproxy's header and Set-Cookie lines.
//
// Where both sides make a fresh percentage roll, the values may differ:
// the test then checks that each side's cookie keeps its own answer, and,
// over the whole run, that each side's share of "on" rolls matches the
// percentages.
//
// FLAGPROXY_DIFF_SEED picks the run (default: random, logged);
// FLAGPROXY_DIFF_CASES is the number of requests per database, split
// between the settings profiles. Without it a run asks defaultDiffCases
// and then goes on, world after world, until every step of waffle's
// decision has decided some compared flags (see uncovered); long runs set
// it (FLAGPROXY_DIFF_CASES=2000 was the old default).
func TestWaffleDifferential(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FLAGPROXY_DIFF_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FLAGPROXY_DIFF_SEED=%q: %v", s, err)
		}
		seed = n
	}
	cases, cover := defaultDiffCases, true
	if s := os.Getenv("FLAGPROXY_DIFF_CASES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("FLAGPROXY_DIFF_CASES=%q: want a positive number", s)
		}
		cases, cover = n, false
	}
	t.Logf("FLAGPROXY_DIFF_SEED=%d FLAGPROXY_DIFF_CASES=%d", seed, cases)
	eachSite(t, func(t *testing.T, db *siteDB, server string) {
		for i, p := range diffProfiles {
			n := cases / len(diffProfiles)
			if i < cases%len(diffProfiles) {
				n++
			}
			t.Run(p.name, func(t *testing.T) {
				runDifferential(t, db, server, p, seed+uint64(i), n, cover)
			})
		}
	})
}

// defaultDiffCases is the number of requests per database without
// FLAGPROXY_DIFF_CASES: 200 for each settings profile, four worlds of 6 to
// 12 flags. Each world draws every column of every flag afresh, so four of
// them hold, with near certainty, flags of every kind and visitors of
// every kind (anonymous, a forged session, inactive, staff, superusers,
// group members); the coverage check below makes sure of it, and a
// profile's 200 cases make over 100 fresh rolls for the share check.
const defaultDiffCases = 400

// minStepHits is how many compared flag decisions each step of waffle's
// decision must have made in a default run; maxCoverageFactor bounds how
// far past its cases a default run goes to get them.
const (
	minStepHits       = 5
	maxCoverageFactor = 4
)

// diffProfile is one set of Django settings both sides run under.
type diffProfile struct {
	name     string
	settings map[string]any
}

var diffProfiles = []diffProfile{
	{"waffle-defaults", map[string]any{}},
	{"waffle-settings", map[string]any{
		"WAFFLE_OVERRIDE":      true,
		"WAFFLE_FLAG_DEFAULT":  true,
		"WAFFLE_COOKIE":        "ab_%s",
		"WAFFLE_TEST_COOKIE":   "qa_%s",
		"WAFFLE_SECURE":        false,
		"WAFFLE_MAX_AGE":       60,
		"LANGUAGE_CODE":        "fr",
		"LANGUAGE_COOKIE_NAME": "lang",
		"LANGUAGES": [][2]string{{"en", "English"}, {"fr", "French"}, {"fr-ca", "Canadian French"},
			{"pt-br", "Brazilian Portuguese"}, {"de-at", "Austrian German"}, {"zh-hans", "Simplified Chinese"}},
	}},
}

// waffleSettings returns the waffle settings of a profile, waffle's
// defaults where it has none.
func (p diffProfile) waffleSettings() engine.WaffleSettings {
	w := engine.DefaultWaffleSettings()
	if v, ok := p.settings["WAFFLE_FLAG_DEFAULT"].(bool); ok {
		w.FlagDefault = v
	}
	if v, ok := p.settings["WAFFLE_OVERRIDE"].(bool); ok {
		w.Override = v
	}
	if v, ok := p.settings["WAFFLE_COOKIE"].(string); ok {
		w.Cookie = v
	}
	if v, ok := p.settings["WAFFLE_TEST_COOKIE"].(string); ok {
		w.TestCookie = v
	}
	if v, ok := p.settings["WAFFLE_SECURE"].(bool); ok {
		w.Secure = v
	}
	if v, ok := p.settings["WAFFLE_MAX_AGE"].(int); ok {
		w.MaxAge = v
	}
	return w
}

func (p diffProfile) languageCookie() string {
	if v, ok := p.settings["LANGUAGE_COOKIE_NAME"].(string); ok {
		return v
	}
	return "django_language"
}

// casesPerWorld is how many requests are asked of one generated world.
const casesPerWorld = 50

func runDifferential(t *testing.T, db *siteDB, server string, p diffProfile, seed uint64, cases int, cover bool) {
	settingsJSON, err := json.Marshal(p.settings)
	if err != nil {
		t.Fatal(err)
	}
	env := "FLAGPROXY_DJANGO_SETTINGS=" + string(settingsJSON)
	upstream := django(t, server, db.URL, env)
	// flagproxy reads the settings the site itself reports.
	file := filepath.Join(t.TempDir(), "settings.json")
	manageEnv(t, db.URL, []string{env}, "flagproxy_settings", "-o", file)
	proxyURL, _ := flagproxy(t, upstream, db.URL, "--django-settings", file, "--poll-interval", "100ms")

	d := &differ{t: t, db: db, p: p, w: p.waffleSettings(), upstream: upstream, proxy: proxyURL,
		rng: rand.New(rand.NewPCG(seed, 0x5eed)), seed: seed, steps: map[string]int{}}
	done, world := 0, 0
	runWorld := func(n int) {
		d.newWorld(world)
		for i := 0; i < n; i, done = i+1, done+1 {
			d.check(world, i)
			if d.failures >= 5 {
				t.Fatalf("stopping after %d disagreements (FLAGPROXY_DIFF_SEED=%d)", d.failures, seed)
			}
		}
		world++
	}
	for done < cases {
		runWorld(min(casesPerWorld, cases-done))
	}
	// A default run goes on until every step has decided enough flags
	// (rarely needed: the default cases almost always suffice).
	for cover && len(d.uncovered()) > 0 && done < maxCoverageFactor*cases {
		runWorld(casesPerWorld)
	}
	if missing := d.uncovered(); cover && len(missing) > 0 {
		t.Errorf("after %d cases no more than %d compared flags were decided by %q (FLAGPROXY_DIFF_SEED=%d): the generator no longer reaches every rule",
			done, minStepHits-1, missing, seed)
	}
	d.checkShares()
	t.Logf("%d cases in %s (%d worlds): %d flag decisions compared exactly, %d fresh rolls on each side, %d cookies compared; decided by %s",
		done, p.name, world, d.compared, len(d.rolls[0]), d.cookies, d.stepSummary())
}

// differ holds one differential run.
type differ struct {
	t        *testing.T
	db       *siteDB
	p        diffProfile
	w        engine.WaffleSettings
	upstream string
	proxy    string
	rng      *rand.Rand
	seed     uint64

	world    diffWorld
	failures int
	compared int
	cookies  int
	// rolls[0] are waffle's fresh rolls, rolls[1] flagproxy's.
	rolls [2][]roll
	// steps counts the compared flag decisions by the step of waffle's
	// decision that made them (decidingStep).
	steps map[string]int
}

type roll struct {
	percent float64
	on      bool
}

type diffUser struct {
	id                       int64
	staff, superuser, active bool
	groups                   []int64
	session                  string // sessionid cookie value
}

type diffFlag struct {
	id                                                 int64
	name                                               string
	everyone                                           *bool
	percent                                            *string
	testing, superusers, staff, authenticated, rollout bool
	languages                                          string
	users, groups                                      []int64
}

type diffWorld struct {
	flags    []diffFlag
	switches map[string]bool
	samples  map[string]string // name -> percent, all decided without a roll
	missing  []string
	users    []diffUser
	sentinel string
}

var diffLanguages = []string{"en", "en-us", "fr", "fr-ca", "de", "de-at", "pt-br", "zh-hans", "xx", "FR", ""}

// newWorld replaces the waffle tables' rows with a generated world and
// waits until flagproxy serves it.
func (d *differ) newWorld(n int) {
	t, r := d.t, d.rng
	for _, q := range []string{"DELETE FROM waffle_flag_users", "DELETE FROM waffle_flag_groups",
		"DELETE FROM waffle_flag", "DELETE FROM waffle_switch", "DELETE FROM waffle_sample"} {
		d.db.Exec(t, q)
	}
	w := diffWorld{switches: map[string]bool{}, samples: map[string]string{}}
	groups := make([]int64, 3)
	for i := range groups {
		groups[i] = d.insert(`INSERT INTO auth_group (name) VALUES (?) RETURNING id`, fmt.Sprintf("g%d-%d-%d", d.seed%1000, n, i))
	}
	for i := 0; i < 6; i++ {
		u := diffUser{staff: r.IntN(3) == 0, superuser: r.IntN(5) == 0, active: r.IntN(6) != 0}
		u.id = d.insert(`INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
			VALUES ('!', ?, ?, '', '', '', ?, ?, '2026-11-21 00:00:00') RETURNING id`,
			u.superuser, fmt.Sprintf("u%d-%d-%d", d.seed, n, i), u.staff, u.active)
		for _, g := range groups {
			if r.IntN(3) == 0 {
				d.db.Exec(t, `INSERT INTO auth_user_groups (user_id, group_id) VALUES (?, ?)`, u.id, g)
				u.groups = append(u.groups, g)
			}
		}
		u.session = d.session(u.id)
		w.users = append(w.users, u)
	}
	words := []string{"beta", "new_ui", "Search", "x", "checkout-v2", "a.b", "ns:flag", "café", "Mixed_Case"}
	percents := []string{"0.1", "12.5", "33.3", "50.0", "50.0", "66.6", "99.9", "0", "-5.0", fmt.Sprintf("%d.%d", r.IntN(100), r.IntN(10))}
	for i, nflags := 0, 6+r.IntN(7); i < nflags; i++ {
		f := diffFlag{name: fmt.Sprintf("%s%d", words[r.IntN(len(words))], i)}
		if r.IntN(5) == 0 {
			v := r.IntN(2) == 0
			f.everyone = &v
		}
		if r.IntN(3) != 0 {
			f.percent = &percents[r.IntN(len(percents))]
		}
		f.testing = r.IntN(3) == 0
		f.superusers = r.IntN(2) == 0
		f.staff = r.IntN(4) == 0
		f.authenticated = r.IntN(6) == 0
		f.rollout = r.IntN(3) == 0
		if r.IntN(3) == 0 {
			var parts []string
			for range 1 + r.IntN(3) {
				parts = append(parts, strings.Repeat(" ", r.IntN(2))+diffLanguages[r.IntN(len(diffLanguages))])
			}
			f.languages = strings.Join(parts, ",")
		}
		var percent any
		if f.percent != nil {
			percent = *f.percent
		}
		var everyone any
		if f.everyone != nil {
			everyone = *f.everyone
		}
		f.id = d.insert(`INSERT INTO waffle_flag (name, everyone, percent, testing, superusers, staff, authenticated,
			languages, rollout, note, created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', '2026-11-21 00:00:00', '2026-11-21 00:00:00') RETURNING id`,
			f.name, everyone, percent, f.testing, f.superusers, f.staff, f.authenticated, f.languages, f.rollout)
		for _, u := range w.users {
			if r.IntN(5) == 0 {
				d.db.Exec(t, `INSERT INTO waffle_flag_users (flag_id, user_id) VALUES (?, ?)`, f.id, u.id)
				f.users = append(f.users, u.id)
			}
		}
		for _, g := range groups {
			if r.IntN(4) == 0 {
				d.db.Exec(t, `INSERT INTO waffle_flag_groups (flag_id, group_id) VALUES (?, ?)`, f.id, g)
				f.groups = append(f.groups, g)
			}
		}
		w.flags = append(w.flags, f)
	}
	for i := range 3 {
		name := fmt.Sprintf("switch_%d", i)
		w.switches[name] = r.IntN(2) == 0
		d.db.Exec(t, `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES (?, ?, '', '2026-11-21 00:00:00', '2026-11-21 00:00:00')`,
			name, w.switches[name])
	}
	for i, pct := range []string{"100.0", "150.0", "-5.0"} {
		name := fmt.Sprintf("sample_%d", i)
		w.samples[name] = pct
		d.db.Exec(t, `INSERT INTO waffle_sample (name, percent, note, created, modified) VALUES (?, ?, '', '2026-11-21 00:00:00', '2026-11-21 00:00:00')`, name, pct)
	}
	// The world's sentinel switch, written last, tells flagproxy's
	// snapshot of the whole world from one caught half-way.
	w.sentinel = fmt.Sprintf("diff_world_%d", n)
	d.db.Exec(t, `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES (?, ?, '', '2026-11-21 00:00:00', '2026-11-21 00:00:00')`, w.sentinel, true)
	w.missing = []string{"missing_flag", fmt.Sprintf("missing_%d", n)}
	d.world = w
	d.waitForWorld()
}

func (d *differ) insert(q string, args ...any) int64 {
	d.t.Helper()
	var id int64
	if err := d.db.DB.QueryRow(d.db.Rebind(q), args...).Scan(&id); err != nil {
		d.t.Fatalf("%s: %v", q, err)
	}
	return id
}

// session logs the user in through the test site and returns the session
// cookie's value.
func (d *differ) session(id int64) string {
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(fmt.Sprintf("%s/session/?user=%d", d.upstream, id))
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == "sessionid" {
			return c.Value
		}
	}
	d.t.Fatalf("no session cookie for user %d (status %d)", id, resp.StatusCode)
	return ""
}

// waitForWorld waits until flagproxy's header carries the world.
func (d *differ) waitForWorld() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		e := rawGet(d.t, d.proxy, "/echo/")
		f := decodeFlags(d.t, e)
		if f.Switches[d.world.sentinel] && len(f.Flags) == len(d.world.flags) {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("flagproxy did not load world %s within 10s: %+v", d.world.sentinel, f)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// diffRequest is one generated request.
type diffRequest struct {
	user    int // index into the world's users; -1 anonymous, -2 a forged session
	query   string
	cookies []string
	headers [][2]string
}

func (q diffRequest) String() string {
	return fmt.Sprintf("user %d, query %q, cookies %q, headers %q", q.user, q.query, q.cookies, q.headers)
}

func (d *differ) generate() diffRequest {
	r, w := d.rng, d.world
	q := diffRequest{user: r.IntN(len(w.users)+2) - 2}
	if q.user == -2 {
		q.cookies = append(q.cookies, "sessionid=0123456789abcdefghijklmnopqrstuv")
	} else if q.user >= 0 {
		q.cookies = append(q.cookies, "sessionid="+w.users[q.user].session)
	}
	var params []string
	cookieValues := []string{"True", "False", "true", "1", `"True"`, " True ", "True"}
	for _, f := range w.flags {
		name := f.name
		if r.IntN(4) == 0 {
			v := cookieValues[r.IntN(len(cookieValues))]
			c := fmt.Sprintf(d.w.Cookie, name) + "=" + v
			if r.IntN(8) == 0 { // a duplicate: Django keeps the last
				c = fmt.Sprintf(d.w.Cookie, name) + "=" + cookieValues[r.IntN(len(cookieValues))] + "; " + c
			}
			q.cookies = append(q.cookies, c)
		}
		test := fmt.Sprintf(d.w.TestCookie, name)
		if r.IntN(6) == 0 {
			q.cookies = append(q.cookies, test+"="+[]string{"True", "False", "true"}[r.IntN(3)])
		}
		if r.IntN(6) == 0 {
			key := url.QueryEscape(test)
			if r.IntN(4) == 0 {
				key = strings.ReplaceAll(key, "_", "%5F")
			}
			if r.IntN(5) == 0 {
				key = strings.ToLower(key) // names are case-sensitive in queries
			}
			params = append(params, key+"="+[]string{"1", "0", "true", ""}[r.IntN(4)])
		}
		if h := strings.ReplaceAll(test, "_", "-"); r.IntN(8) == 0 && httpToken(h) {
			if r.IntN(2) == 0 {
				h = strings.ToUpper(h)
			}
			q.headers = append(q.headers, [2]string{h, []string{"1", "0", "true"}[r.IntN(3)]})
		}
		if r.IntN(6) == 0 { // WAFFLE_OVERRIDE's parameter, ignored without it
			v := []string{"1", "0", "true", "1;x=2"}[r.IntN(4)]
			params = append(params, url.QueryEscape(name)+"="+v)
			if r.IntN(5) == 0 {
				params = append(params, url.QueryEscape(name)+"=0")
			}
		}
	}
	for _, m := range w.missing {
		if r.IntN(4) == 0 {
			params = append(params, url.QueryEscape(m)+"=1")
		}
	}
	if r.IntN(4) == 0 {
		params = append(params, "x=1;"+url.QueryEscape(fmt.Sprintf(d.w.TestCookie, w.flags[0].name))+"=1")
	}
	r.Shuffle(len(params), func(i, j int) { params[i], params[j] = params[j], params[i] })
	q.query = strings.Join(params, "&")
	if r.IntN(3) == 0 {
		q.cookies = append(q.cookies, d.p.languageCookie()+"="+diffLanguages[r.IntN(len(diffLanguages))])
	}
	if r.IntN(2) == 0 {
		accepts := []string{"fr", "fr-CA", "fr-CA,fr;q=0.9", "de-AT, de;q=0.5", "en-US,en;q=0.5", "pt-BR", "zh-CN",
			"*", "xx, fr;q=0.1", "garbage!!", "de;q=0.1, pt;q=0.2"}
		q.headers = append(q.headers, [2]string{"Accept-Language", accepts[r.IntN(len(accepts))]})
	}
	r.Shuffle(len(q.cookies), func(i, j int) { q.cookies[i], q.cookies[j] = q.cookies[j], q.cookies[i] })
	return q
}

// httpToken reports whether s can be sent as a header name.
func httpToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

// waffleAnswer is what the test site's /waffle/ view returns.
type waffleAnswer struct {
	Flags    map[string]bool   `json:"flags"`
	Switches map[string]bool   `json:"switches"`
	Samples  map[string]bool   `json:"samples"`
	Rolled   []string          `json:"rolled"`
	Cookies  map[string]string `json:"cookies"`
	Language *string           `json:"language"`
	User     *string           `json:"user"`
	Meta     map[string]string `json:"meta"`
}

func (d *differ) check(world, i int) {
	t := d.t
	q := d.generate()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", d.proxy+"/waffle/?"+q.query, nil)
	if err != nil {
		t.Fatal(err)
	}
	missing, _ := json.Marshal(d.world.missing)
	req.Header.Set("X-Diff-Missing", string(missing))
	if len(q.cookies) > 0 {
		req.Header.Set("Cookie", strings.Join(q.cookies, "; "))
	}
	for _, h := range q.headers {
		req.Header[h[0]] = append(req.Header[h[0]], h[1])
	}
	sent := time.Now()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("world %d case %d (FLAGPROXY_DIFF_SEED=%d): status %d: %s\nrequest: %s", world, i, d.seed, resp.StatusCode, body, q)
	}
	var waffle waffleAnswer
	if err := json.Unmarshal(body, &waffle); err != nil {
		t.Fatalf("/waffle/ answered %q: %v", body, err)
	}
	h := http.Header{}
	for k, v := range waffle.Meta {
		h.Set(strings.ReplaceAll(strings.TrimPrefix(k, "HTTP_"), "_", "-"), v)
	}
	ours, err := proxy.Decode(h)
	if err != nil {
		t.Fatalf("flags header: %v (%v)", err, waffle.Meta)
	}

	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	sentCookies := engine.ParseCookies(req.Header.Get("Cookie"))
	// Waffle's cookies in the response, which also carries Django's own
	// (the session middleware deletes a forged session cookie).
	ourCookies := map[string]string{}
	for _, line := range resp.Header.Values("Set-Cookie") {
		name, _, _ := strings.Cut(line, "=")
		if d.waffleCookie(name) {
			ourCookies[name] = line
		}
	}
	// A fresh roll shows in its cookie. Python refuses some names (Django
	// then answers 500, and flagproxy writes no cookie), so for those
	// flags a roll cannot be told from the outside: they are left out.
	unwritable := func(name string) bool {
		return strings.HasPrefix(waffle.Cookies["waffles:"+name], "error: ")
	}
	var theirRolled, ourRolled []string
	for _, f := range d.world.flags {
		c := fmt.Sprintf(d.w.Cookie, f.name)
		if _, had := sentCookies.Get(c); !had && ourCookies[c] != "" {
			ourRolled = append(ourRolled, f.name)
		}
	}
	for _, name := range waffle.Rolled {
		if !unwritable(name) {
			theirRolled = append(theirRolled, name)
		}
	}
	sort.Strings(ourRolled)
	if !slices.Equal(theirRolled, ourRolled) {
		fail("fresh rolls: waffle %q, flagproxy %q", theirRolled, ourRolled)
	}

	// Decisions.
	for _, f := range d.world.flags {
		want, ok := waffle.Flags[f.name]
		if !ok {
			fail("waffle did not evaluate %q", f.name)
			continue
		}
		got, ok := ours.Flags[f.name]
		if !ok {
			fail("flag %q missing from flagproxy's header", f.name)
			continue
		}
		if slices.Contains(waffle.Rolled, f.name) && unwritable(f.name) {
			continue
		}
		d.steps[d.decidingStep(f, q, sentCookies, waffle.Language)]++
		if slices.Contains(ourRolled, f.name) && slices.Contains(theirRolled, f.name) {
			pct, _ := strconv.ParseFloat(*f.percent, 64)
			d.rolls[0] = append(d.rolls[0], roll{pct, want})
			d.rolls[1] = append(d.rolls[1], roll{pct, got})
			d.checkRolledCookie(fail, "waffle", f.name, waffle.Cookies[fmt.Sprintf(d.w.Cookie, f.name)], want)
			d.checkRolledCookie(fail, "flagproxy", f.name, ourCookies[fmt.Sprintf(d.w.Cookie, f.name)], got)
			continue
		}
		d.compared++
		if got != want {
			fail("flag %q: waffle %v, flagproxy %v (source %q) — row %+v", f.name, want, got, ours.Sources[f.name], d.describe(f))
		}
	}
	for _, m := range d.world.missing {
		if _, ok := ours.Flags[m]; ok {
			fail("missing flag %q is in flagproxy's header", m)
		}
		if waffle.Flags[m] != d.w.FlagDefault {
			fail("waffle gave %v for missing flag %q, not WAFFLE_FLAG_DEFAULT", waffle.Flags[m], m)
		}
	}
	// The world's switches, with its sentinel, and samples: both sides
	// must know every one.
	if len(waffle.Switches) != len(d.world.switches)+1 || len(ours.Switches) != len(waffle.Switches) {
		fail("switches: the world has %d and its sentinel, waffle answered %d, flagproxy %d",
			len(d.world.switches), len(waffle.Switches), len(ours.Switches))
	}
	if len(waffle.Samples) != len(d.world.samples) || len(ours.Samples) != len(waffle.Samples) {
		fail("samples: the world has %d, waffle answered %d, flagproxy %d",
			len(d.world.samples), len(waffle.Samples), len(ours.Samples))
	}
	for name, want := range waffle.Switches {
		if got, ok := ours.Switches[name]; !ok || got != want {
			fail("switch %q: waffle %v, flagproxy %v (present %v)", name, want, got, ok)
		}
	}
	for name, want := range waffle.Samples {
		if got, ok := ours.Samples[name]; !ok || got != want {
			fail("sample %q (percent %s): waffle %v, flagproxy %v (present %v)", name, d.world.samples[name], want, got, ok)
		}
	}

	// Cookies, attribute for attribute. Where both sides rolled afresh and
	// landed differently, only the value may differ, and with rollout the
	// lifetime that goes with it.
	rolledCookie := map[string]bool{}
	for _, name := range ourRolled {
		rolledCookie[fmt.Sprintf(d.w.Cookie, name)] = true
	}
	for name, theirs := range waffle.Cookies {
		if kind, flag, ok := strings.Cut(name, ":"); ok && strings.HasPrefix(theirs, "error: ") {
			// Python refuses the name, so Django answers 500; flagproxy
			// leaves the cookie out instead.
			pattern := d.w.Cookie
			if kind == "waffle_tests" {
				pattern = d.w.TestCookie
			}
			if mine := ourCookies[fmt.Sprintf(pattern, flag)]; mine != "" {
				fail("cookie for %q: waffle cannot write it (%s), flagproxy wrote %q", flag, theirs, mine)
			}
			continue
		}
		mine := ourCookies[name]
		d.cookies++
		a, errA := normalizeCookie(theirs, sent)
		b, errB := normalizeCookie(mine, sent)
		if errA != nil || errB != nil {
			fail("cookie %q: waffle %q (%v), flagproxy %q (%v)", name, theirs, errA, mine, errB)
			continue
		}
		if a != b && rolledCookie[name] {
			a, b = withoutValueAndLifetime(a), withoutValueAndLifetime(b)
		}
		if a != b {
			fail("cookie %q: waffle %q, flagproxy %q", name, theirs, mine)
		}
	}
	for name, line := range ourCookies {
		if _, ok := waffle.Cookies[name]; !ok {
			fail("flagproxy wrote a cookie waffle did not: %q", line)
		}
	}
	if len(problems) > 0 {
		d.failures++
		user := "anonymous"
		if q.user == -2 {
			user = "a forged session"
		} else if q.user >= 0 {
			u := d.world.users[q.user]
			user = fmt.Sprintf("user %d (staff %v, superuser %v, active %v, groups %v)", u.id, u.staff, u.superuser, u.active, u.groups)
		}
		lang := "none"
		if waffle.Language != nil {
			lang = *waffle.Language
		}
		t.Errorf("FLAGPROXY_DIFF_SEED=%d, %s, world %d, case %d: %d disagreements\n  request: %s\n  visitor: %s, Django's LANGUAGE_CODE %q\n  %s",
			d.seed, d.p.name, world, i, len(problems), q, user, lang, strings.Join(problems, "\n  "))
	}
}

// waffleCookie reports whether name fits WAFFLE_COOKIE or
// WAFFLE_TEST_COOKIE.
func (d *differ) waffleCookie(name string) bool {
	for _, pattern := range []string{d.w.Cookie, d.w.TestCookie} {
		prefix, suffix, _ := strings.Cut(pattern, "%s")
		if strings.HasPrefix(name, prefix) && strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

func (d *differ) checkRolledCookie(fail func(string, ...any), side, name, line string, on bool) {
	want := "False"
	if on {
		want = "True"
	}
	_, rest, _ := strings.Cut(line, "=")
	value, _, _ := strings.Cut(rest, ";")
	if value != want {
		fail("%s rolled %q %v but its cookie is %q", side, name, on, line)
	}
}

func (d *differ) describe(f diffFlag) string {
	s := fmt.Sprintf("testing=%v superusers=%v staff=%v authenticated=%v rollout=%v languages=%q users=%v groups=%v",
		f.testing, f.superusers, f.staff, f.authenticated, f.rollout, f.languages, f.users, f.groups)
	if f.everyone != nil {
		s += fmt.Sprintf(" everyone=%v", *f.everyone)
	}
	if f.percent != nil {
		s += " percent=" + *f.percent
	}
	return s
}

// withoutValueAndLifetime drops the value, expires and Max-Age of a
// normalised Set-Cookie line.
func withoutValueAndLifetime(line string) string {
	parts := strings.Split(line, "; ")
	name, _, _ := strings.Cut(parts[0], "=")
	out := []string{name + "=*"}
	for _, p := range parts[1:] {
		if !strings.HasPrefix(p, "expires=") && !strings.HasPrefix(p, "Max-Age=") {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}

// normalizeCookie checks a Set-Cookie line's expires against its Max-Age
// (within a few seconds of sent) and replaces the date with "*".
func normalizeCookie(line string, sent time.Time) (string, error) {
	parts := strings.Split(line, "; ")
	maxAge := -1
	for _, p := range parts {
		if v, ok := strings.CutPrefix(p, "Max-Age="); ok {
			maxAge, _ = strconv.Atoi(v)
		}
	}
	for i, p := range parts {
		v, ok := strings.CutPrefix(p, "expires=")
		if !ok {
			continue
		}
		at, err := http.ParseTime(v)
		if err != nil {
			return "", fmt.Errorf("expires %q: %v", v, err)
		}
		if maxAge < 0 {
			return "", fmt.Errorf("expires without Max-Age")
		}
		if off := at.Sub(sent.Add(time.Duration(maxAge) * time.Second)); math.Abs(off.Seconds()) > 5 {
			return "", fmt.Errorf("expires %s is %v away from now + Max-Age", v, off)
		}
		parts[i] = "expires=*"
	}
	return strings.Join(parts, "; "), nil
}

// checkShares compares each side's share of "on" among fresh rolls with
// the share the percentages promise: |z| must stay below 5.
func (d *differ) checkShares() {
	for side, rolls := range d.rolls {
		if len(rolls) < 100 {
			// A short run (a small FLAGPROXY_DIFF_CASES) proves nothing
			// statistically; the default run makes about 300 rolls a
			// profile.
			d.t.Logf("only %d fresh rolls: too few to check the shares", len(rolls))
			return
		}
		var on, want, variance float64
		for _, r := range rolls {
			p := math.Min(math.Max(r.percent/100, 0), 1)
			want += p
			variance += p * (1 - p)
			if r.on {
				on++
			}
		}
		z := (on - want) / math.Sqrt(variance)
		name := [...]string{"waffle", "flagproxy"}[side]
		d.t.Logf("%s: %d fresh rolls, %.0f on, %.1f expected (z = %.2f)", name, len(rolls), on, want, z)
		if math.Abs(z) >= 5 {
			d.t.Errorf("%s switched on %.0f of %d fresh rolls, expected %.1f (z = %.2f, FLAGPROXY_DIFF_SEED=%d)",
				name, on, len(rolls), want, z, d.seed)
		}
	}
}

// The steps of waffle's flag decision (spec/waffle.md §2.2, §2.3), as
// decidingStep names them.
var diffSteps = []string{"override", "everyone", "testing-query", "testing-header", "testing-cookie", "languages",
	"authenticated", "staff", "superusers", "users", "groups", "percent-cookie", "percent-roll", "off"}

// decidingStep names the step of waffle's flag_is_active that decides flag
// f for request q, following spec/waffle.md §2.2: it only tallies what a
// run covered (the decisions themselves are compared with waffle's).
// language is the LANGUAGE_CODE Django derived.
func (d *differ) decidingStep(f diffFlag, q diffRequest, cookies engine.Params, language *string) string {
	query := map[string]bool{}
	for _, kv := range strings.Split(q.query, "&") {
		if kv == "" {
			continue
		}
		k, _, _ := strings.Cut(kv, "=")
		if u, err := url.QueryUnescape(k); err == nil {
			k = u
		}
		query[k] = true
	}
	if d.w.Override && query[f.name] {
		return "override"
	}
	if f.everyone != nil {
		return "everyone"
	}
	if f.testing {
		test := fmt.Sprintf(d.w.TestCookie, f.name)
		if query[test] {
			return "testing-query"
		}
		h := strings.ReplaceAll(test, "_", "-")
		for _, hv := range q.headers {
			if strings.EqualFold(hv[0], h) {
				return "testing-header"
			}
		}
		if _, ok := cookies.Get(test); ok {
			return "testing-cookie"
		}
	}
	if f.languages != "" && language != nil {
		for _, l := range strings.Split(f.languages, ",") {
			if strings.TrimSpace(l) == *language {
				return "languages"
			}
		}
	}
	// ModelBackend: an inactive user's session is anonymous.
	if q.user >= 0 && d.world.users[q.user].active {
		u := d.world.users[q.user]
		switch {
		case f.authenticated:
			return "authenticated"
		case f.staff && u.staff:
			return "staff"
		case f.superusers && u.superuser:
			return "superusers"
		case slices.Contains(f.users, u.id):
			return "users"
		case slices.ContainsFunc(f.groups, func(g int64) bool { return slices.Contains(u.groups, g) }):
			return "groups"
		}
	}
	if f.percent != nil {
		if pct, err := strconv.ParseFloat(*f.percent, 64); err == nil && pct > 0 {
			if _, ok := cookies.Get(fmt.Sprintf(d.w.Cookie, f.name)); ok {
				return "percent-cookie"
			}
			return "percent-roll"
		}
	}
	return "off"
}

// uncovered lists the steps that decided fewer than minStepHits compared
// flags ("override" only counts where WAFFLE_OVERRIDE is on).
func (d *differ) uncovered() []string {
	var out []string
	for _, s := range diffSteps {
		if s == "override" && !d.w.Override {
			continue
		}
		if d.steps[s] < minStepHits {
			out = append(out, s)
		}
	}
	return out
}

func (d *differ) stepSummary() string {
	var parts []string
	for _, s := range diffSteps {
		if n := d.steps[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	return strings.Join(parts, ", ")
}
