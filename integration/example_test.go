//go:build integration

package integration

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// exampleDir is the example project of integration/example/README.md.
const exampleDir = "example"

// exampleDatabases are the databases the example is tested on: the
// harness's fresh SQLite file and fresh PostgreSQL database.
var exampleDatabases = []struct {
	name  string
	newDB func(*testing.T) *siteDB
}{
	{"sqlite", newSQLiteSite},
	{"postgres", newPostgresSite},
}

// exampleUser is what one of the example's fixture users must see.
type exampleUser struct {
	name string // "" for an anonymous visitor
	// The waffle flags: awesome_text (authenticated), staff_tools (staff)
	// and reviews (the beta group).
	awesome, staff, reviews bool
	// The FeatureFlag new_pricing: enabled, rollout 35 %, allowed user
	// quinn. Buckets (sha256 of "new_pricing:<pk>" mod 100): alice (pk 1)
	// 40, bob (pk 2) 31, quinn (pk 3) 54.
	newPricing bool
}

var exampleUsers = []exampleUser{
	{name: ""},
	{name: "alice", awesome: true, staff: true},                     // staff, bucket 40
	{name: "bob", awesome: true, newPricing: true},                  // plain, bucket 31
	{name: "quinn", awesome: true, reviews: true, newPricing: true}, // QA and beta, allowed user
}

// TestExampleBehindFlagproxy runs the example project as its README says
// (migrate, loaddata, flagproxy_settings, gunicorn, flagproxy) on SQLite
// and on PostgreSQL, and checks what Django saw and rendered for an
// anonymous visitor, a plain, a staff and a QA user logged in through
// Django's login view; URL and session overrides for the QA user, none
// for the others; and a change made in the database.
func TestExampleBehindFlagproxy(t *testing.T) {
	t.Parallel()
	for _, d := range exampleDatabases {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			requireDjango(t, "psycopg2", "gunicorn")
			db, settings := newExampleSite(t, d.newDB)
			upstream := exampleDjango(t, db.URL, "flagproxy")
			proxyURL, _ := flagproxy(t, upstream, db.URL, "--django-settings", settings)

			t.Run("users", func(t *testing.T) {
				for _, u := range exampleUsers {
					b := newBrowser(t, proxyURL)
					b.login(u.name)
					checkExampleUser(t, b, u)
					checkStickyPercentage(t, b)
				}
			})
			t.Run("overrides", func(t *testing.T) {
				checkExampleOverrides(t, proxyURL)
			})
			t.Run("database-change", func(t *testing.T) {
				// A feature enabled by SQL, a switch turned off with
				// waffle's own management command: both show without
				// restarting anything.
				b := newBrowser(t, proxyURL)
				b.login("bob")
				db.Exec(t, `UPDATE featureflipper_feature SET enabled = ? WHERE name = 'search'`, true)
				exampleManage(t, db.URL, "waffle_switch", "announcement", "off")
				b.waitFor("/", func(page string) bool {
					return strings.Contains(page, `<form id="search"`) && !strings.Contains(page, "Announcement:")
				})
			})
		})
	}
}

// checkExampleUser checks the decisions Django saw (/flags/) and the page
// it rendered (/ and /staff/) for one user.
func checkExampleUser(t *testing.T, b *browser, u exampleUser) {
	t.Helper()
	who := orAnon(u.name)
	got := b.flags("/flags/")
	want := exampleFlags{
		Mode:     "flagproxy",
		User:     u.name,
		Flags:    map[string]bool{"awesome_text": u.awesome, "staff_tools": u.staff, "reviews": u.reviews},
		Switches: map[string]bool{"announcement": true},
		Features: map[string]bool{"search": false, "newsletter": true, "new_pricing": u.newPricing},
		Sources:  map[string]string{"search": "site", "newsletter": "site", "new_pricing": "site"},
	}
	delete(got.Flags, "fresh_look") // a random roll: checkStickyPercentage
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: /flags/ (-want +got):\n%s", who, diff)
	}

	page := b.page("/")
	for text, shown := range map[string]bool{
		"Announcement: the spring sale":        true,
		"This is some awesome text":            u.awesome,
		"Log in to see the awesome text":       !u.awesome,
		`<p id="staff-tools">`:                 u.staff,
		`<section id="reviews">`:               u.reviews,
		"Search is coming soon.":               true,
		"Subscribe to our newsletter.":         true,
		"Prices: new pricing.":                 u.newPricing,
		"Prices: classic pricing.":             !u.newPricing,
		"Flags decided by flagproxy":           true,
		"Logged in as <strong>" + u.name + "<": u.name != "",
	} {
		if strings.Contains(page, text) != shown {
			t.Errorf("%s: page shows %q: %v, want %v\n%s", who, text, !shown, shown, mainOf(page))
		}
	}
	wantStatus := http.StatusNotFound
	if u.staff {
		wantStatus = http.StatusOK
	}
	if code, _ := b.get("/staff/"); code != wantStatus {
		t.Errorf("%s: /staff/ answered %d, want %d", who, code, wantStatus)
	}
}

// checkStickyPercentage checks the 50 % flag fresh_look: flagproxy rolls
// once, writes waffle's dwf_fresh_look cookie, and the visitor keeps that
// side; a cookie the visitor already holds decides.
func checkStickyPercentage(t *testing.T, b *browser) {
	t.Helper()
	first := b.flags("/flags/").Flags["fresh_look"]
	cookie := b.cookie("dwf_fresh_look")
	if want := map[bool]string{true: "True", false: "False"}[first]; cookie != want {
		t.Fatalf("after a roll of %v the dwf_fresh_look cookie is %q, want %q", first, cookie, want)
	}
	for range 3 {
		if again := b.flags("/flags/").Flags["fresh_look"]; again != first {
			t.Fatalf("fresh_look changed from %v to %v despite dwf_fresh_look=%s", first, again, cookie)
		}
	}
	for _, pinned := range []bool{true, false} {
		b.setCookie("dwf_fresh_look", map[bool]string{true: "True", false: "False"}[pinned])
		if got := b.flags("/flags/").Flags["fresh_look"]; got != pinned {
			t.Errorf("with dwf_fresh_look pinned to %v, Django saw %v", pinned, got)
		}
		look := map[bool]string{true: "fresh look", false: "classic look"}[pinned]
		if page := b.page("/"); !strings.Contains(page, "You are seeing the "+look) {
			t.Errorf("with dwf_fresh_look pinned to %v the page does not show the %s:\n%s", pinned, look, mainOf(page))
		}
	}
}

// checkExampleOverrides: quinn (group qa, with
// featureflipper.can_flip_with_url) flips features and a waffle flag by
// URL, for one request or for the session; bob and an anonymous visitor
// cannot.
func checkExampleOverrides(t *testing.T, proxyURL string) {
	quinn := newBrowser(t, proxyURL)
	quinn.login("quinn")
	f := quinn.flags("/flags/?enable_search")
	if !f.Features["search"] || f.Sources["search"] != "url" {
		t.Errorf("quinn ?enable_search: search %v from %q, want true from url", f.Features["search"], f.Sources["search"])
	}
	if page := quinn.page("/?enable_search"); !strings.Contains(page, `<form id="search"`) {
		t.Errorf("quinn /?enable_search does not show the search form:\n%s", mainOf(page))
	}
	if f := quinn.flags("/flags/"); f.Features["search"] {
		t.Error("quinn: ?enable_search lasted beyond its request")
	}
	// flagproxy flips waffle flags too: QA previews the staff tools. (In
	// waffle mode nothing would: this also shows that the templates'
	// {% flag %} and the view's @waffle_flag read flagproxy's header.)
	if page := quinn.page("/?enable_staff_tools"); !strings.Contains(page, `<p id="staff-tools">`) {
		t.Errorf("quinn /?enable_staff_tools does not show the staff tools:\n%s", mainOf(page))
	}
	if code, _ := quinn.get("/staff/?enable_staff_tools"); code != http.StatusOK {
		t.Errorf("quinn /staff/?enable_staff_tools answered %d, want 200", code)
	}

	quinn.get("/?session_enable_search")
	for range 2 {
		f := quinn.flags("/flags/")
		if !f.Features["search"] || f.Sources["search"] != "session" {
			t.Fatalf("quinn after ?session_enable_search: search %v from %q, want true from session", f.Features["search"], f.Sources["search"])
		}
	}
	if page := quinn.page("/"); !strings.Contains(page, `<form id="search"`) {
		t.Errorf("quinn's session override does not show the search form:\n%s", mainOf(page))
	}
	quinn.get("/?session_clear_features")
	if f := quinn.flags("/flags/"); f.Features["search"] || f.Sources["search"] != "site" {
		t.Errorf("quinn after ?session_clear_features: search %v from %q, want false from site", f.Features["search"], f.Sources["search"])
	}

	for _, user := range []string{"bob", ""} {
		b := newBrowser(t, proxyURL)
		b.login(user)
		if f := b.flags("/flags/?enable_search&enable_new_pricing"); f.Features["search"] || f.Sources["search"] != "site" {
			t.Errorf("%s flipped search by URL: %v from %q", orAnon(user), f.Features["search"], f.Sources["search"])
		}
		if code, _ := b.get("/staff/?enable_staff_tools"); code != http.StatusNotFound {
			t.Errorf("%s /staff/?enable_staff_tools answered %d, want 404", orAnon(user), code)
		}
		b.get("/?session_enable_search")
		if f := b.flags("/flags/"); f.Features["search"] {
			t.Errorf("%s stored a session override", orAnon(user))
		}
		if c := b.cookie("flagproxy_overrides"); c != "" {
			t.Errorf("%s got an override cookie %q", orAnon(user), c)
		}
	}
}

// TestExampleSameHTMLWithWaffle renders the example's pages twice from one
// database: in EXAMPLE_FLAGS=waffle mode, where waffle's middleware and
// tags (and the in-process feature-flipper code) evaluate every flag
// inside Django, and in flagproxy mode behind flagproxy. For every fixture
// user, with the 50 % flag pinned each way by its dwf_ cookie, the pages
// must be the same.
func TestExampleSameHTMLWithWaffle(t *testing.T) {
	t.Parallel()
	for _, d := range exampleDatabases {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			requireDjango(t, "psycopg2", "gunicorn")
			db, settings := newExampleSite(t, d.newDB)
			inProcess := exampleDjango(t, db.URL, "waffle")
			proxyURL, _ := flagproxy(t, exampleDjango(t, db.URL, "flagproxy"), db.URL, "--django-settings", settings)

			for _, u := range exampleUsers {
				for _, look := range []string{"True", "False"} {
					w, p := newBrowser(t, inProcess), newBrowser(t, proxyURL)
					for _, b := range []*browser{w, p} {
						b.login(u.name)
						b.setCookie("dwf_fresh_look", look)
					}
					for _, path := range []string{"/", "/staff/", "/flags/"} {
						wc, wbody := w.get(path)
						pc, pbody := p.get(path)
						wbody, pbody = comparable(t, path, wbody), comparable(t, path, pbody)
						if wc != pc || wbody != pbody {
							t.Errorf("%s, dwf_fresh_look=%s, %s: waffle mode answered %d, flagproxy mode %d; body (-waffle +flagproxy):\n%s",
								orAnon(u.name), look, path, wc, pc, cmp.Diff(wbody, pbody))
						}
					}
				}
			}
			// The comparison is not vacuous: waffle mode does show
			// the user-dependent parts.
			alice := newBrowser(t, inProcess)
			alice.login("alice")
			if page := alice.page("/"); !strings.Contains(page, "Flags evaluated in Django") || !strings.Contains(page, `<p id="staff-tools">`) {
				t.Errorf("waffle mode does not show alice the staff tools:\n%s", page)
			}
		})
	}
}

// comparable is the part of a response both modes must agree on: the
// <main> element of a page (outside it are the mode's footer and the
// logout form's CSRF token), the decisions of /flags/ without "mode", or
// the whole body of anything else (a 404).
func comparable(t *testing.T, path, body string) string {
	t.Helper()
	if path == "/flags/" {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("/flags/ %q: %v", body, err)
		}
		delete(m, "mode")
		out, _ := json.MarshalIndent(m, "", "  ")
		return string(out)
	}
	if m := mainOf(body); m != "" {
		return m
	}
	return body
}

var mainRE = regexp.MustCompile(`(?s)<main>.*</main>`)

// mainOf returns a page's <main> element, or "".
func mainOf(page string) string {
	return mainRE.FindString(page)
}

// newExampleSite makes a fresh database with the harness (migrated by the
// test site, whose apps the example also has), then runs the example's own
// README steps on it: migrate (which adds the example's other apps),
// loaddata example, and flagproxy_settings, whose file it returns.
func newExampleSite(t *testing.T, newDB func(*testing.T) *siteDB) (*siteDB, string) {
	t.Helper()
	// go test caches a passing run by the files the test opens; the
	// fixtures and templates are part of what this test checks.
	filepath.WalkDir(exampleDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.ReadFile(path)
		}
		return nil
	})
	db := newDB(t)
	exampleManage(t, db.URL, "migrate", "--noinput", "-v", "0")
	exampleManage(t, db.URL, "loaddata", "example")
	settings := filepath.Join(t.TempDir(), "flagproxy.json")
	exampleManage(t, db.URL, "flagproxy_settings", "-o", settings)
	return db, settings
}

// exampleEnv is the example's environment for a database and an
// EXAMPLE_FLAGS mode.
func exampleEnv(dbURL, mode string) []string {
	return []string{
		"EXAMPLE_DATABASE_URL=" + dbURL,
		"EXAMPLE_FLAGS=" + mode,
		"EXAMPLE_DEBUG=0",
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
	}
}

// exampleManage runs the example's manage.py (in flagproxy mode).
func exampleManage(t *testing.T, dbURL string, args ...string) string {
	t.Helper()
	cmd := exec.Command(python, append([]string{"manage.py"}, args...)...)
	cmd.Dir = exampleDir
	cmd.Env = append(os.Environ(), exampleEnv(dbURL, "flagproxy")...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("example manage.py %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// exampleDjango starts the example under gunicorn in an EXAMPLE_FLAGS mode.
func exampleDjango(t *testing.T, dbURL, mode string) string {
	t.Helper()
	addr := freeAddr(t)
	start(t, "gunicorn ("+mode+")", exampleDir, exampleEnv(dbURL, mode),
		python, "-m", "gunicorn", "--bind", addr, "--workers", "2", "mysite.wsgi")
	waitHTTP(t, "http://"+addr+"/accounts/login/", http.StatusOK, 30*time.Second)
	return "http://" + addr
}

// exampleFlags is what the example's /flags/ view returns.
type exampleFlags struct {
	Mode     string            `json:"mode"`
	User     string            `json:"user"`
	Flags    map[string]bool   `json:"flags"`
	Switches map[string]bool   `json:"switches"`
	Features map[string]bool   `json:"features"`
	Sources  map[string]string `json:"sources"`
}

// browser is one visitor with its own cookies. It does not follow
// redirects.
type browser struct {
	t      *testing.T
	base   *url.URL
	client *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: u, client: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) do(req *http.Request) (int, string) {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// get fetches a path and returns the status and body.
func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.base.String()+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// page fetches a page that must answer 200.
func (b *browser) page(path string) string {
	b.t.Helper()
	code, body := b.get(path)
	if code != http.StatusOK {
		b.t.Fatalf("GET %s: %d\n%s", path, code, body)
	}
	return body
}

// flags fetches the /flags/ view (with a query, if any).
func (b *browser) flags(path string) exampleFlags {
	b.t.Helper()
	var f exampleFlags
	if err := json.Unmarshal([]byte(b.page(path)), &f); err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	return f
}

var csrfRE = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)

// login logs in with Django's LoginView, as a person would: fetch the
// form (CSRF cookie and token), post it, expect the redirect home. An
// empty user stays anonymous.
func (b *browser) login(user string) {
	b.t.Helper()
	if user == "" {
		return
	}
	m := csrfRE.FindStringSubmatch(b.page("/accounts/login/"))
	if m == nil {
		b.t.Fatal("the login page has no CSRF token")
	}
	form := url.Values{"username": {user}, "password": {"flagproxy"}, "csrfmiddlewaretoken": {m[1]}}
	req, err := http.NewRequest("POST", b.base.String()+"/accounts/login/", strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if code, body := b.do(req); code != http.StatusFound || b.cookie("sessionid") == "" {
		b.t.Fatalf("login %s: %d, session cookie %q\n%s", user, code, b.cookie("sessionid"), mainOf(body))
	}
}

func (b *browser) cookie(name string) string {
	for _, c := range b.client.Jar.Cookies(b.base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setCookie(name, value string) {
	b.client.Jar.SetCookies(b.base, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// waitFor fetches a page until ok accepts it, for at most 5 seconds.
func (b *browser) waitFor(path string, ok func(page string) bool) {
	b.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		page := b.page(path)
		if ok(page) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("GET %s: not as expected after 5s:\n%s", path, mainOf(page))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
