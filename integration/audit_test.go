//go:build integration

package integration

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestChangeAudit changes a waffle flag through Django's admin, logged in
// as a superuser through flagproxy (on SQLite under runserver and on
// PostgreSQL under gunicorn), and checks that flagproxy's history of the
// flag shows each changed field with that user, on
// /flags/{name}/history.json and on the status page; then that a change
// made directly in SQL shows "unknown".
func TestChangeAudit(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, db *siteDB, server string) {
		manageEnv(t, db.URL, []string{"DJANGO_SUPERUSER_PASSWORD=audit-pass"},
			"createsuperuser", "--noinput", "--username", "auditor", "--email", "auditor@example.com")
		manage(t, db.URL, "waffle_flag", "checkout", "--create")
		upstream := django(t, server, db.URL)
		proxyURL, adminURL := flagproxy(t, upstream, db.URL, "--django-settings", settingsFile(t, ""))

		b := newBrowser(t, proxyURL)
		adminLogin(b, "auditor", "audit-pass")
		var id string
		if err := db.DB.QueryRow(`SELECT id FROM waffle_flag WHERE name = 'checkout'`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		change := "/admin/waffle/flag/" + id + "/change/"
		form := adminForm(t, b.page(change))
		form.Set("everyone", "true")
		form.Set("percent", "25")
		form.Set("_save", "Save")
		if code, body := b.post(change, form); code != http.StatusFound {
			t.Fatalf("admin save: %d\n%s", code, errorsOf(body))
		}

		got := waitForHistory(t, adminURL, "checkout", func(cs []auditChange) bool { return len(cs) >= 2 })
		want := map[string][2]string{"everyone": {"NULL", "true"}, "percent": {"NULL", "25.0"}}
		for _, c := range got {
			w, ok := want[c.Field]
			if !ok || c.Old != w[0] || c.New != w[1] || c.By != "auditor" || c.UserID == "" || c.ChangedAt.IsZero() || c.Op != "changed" {
				t.Errorf("admin change: %+v", c)
			}
			delete(want, c.Field)
		}
		if len(want) > 0 {
			t.Errorf("changes missing from the history: %v (got %+v)", want, got)
		}

		db.Exec(t, `UPDATE waffle_flag SET staff = ? WHERE name = 'checkout'`, true)
		got = waitForHistory(t, adminURL, "checkout", func(cs []auditChange) bool { return len(cs) >= 3 })
		if c := got[0]; c.Field != "staff" || c.Old != "false" || c.New != "true" || c.By != "unknown" || c.UserID != "" {
			t.Errorf("SQL change: %+v", c)
		}
		page := newBrowser(t, adminURL).page("/flags?q=checkout")
		for _, s := range []string{"everyone <code>NULL</code> → <code>true</code>", "by <b>auditor</b>", "by <b>unknown</b>"} {
			if !strings.Contains(page, s) {
				t.Errorf("the status page lacks %q", s)
			}
		}
	})
}

// auditChange is one entry of /flags/{name}/history.json.
type auditChange struct {
	Kind      string    `json:"kind"`
	Op        string    `json:"op"`
	Field     string    `json:"field"`
	Old       string    `json:"old"`
	New       string    `json:"new"`
	By        string    `json:"by"`
	UserID    string    `json:"user_id"`
	ChangedAt time.Time `json:"changed_at"`
}

// waitForHistory fetches a flag's history until done accepts it, for at
// most 10 seconds, and returns it.
func waitForHistory(t *testing.T, adminURL, name string, done func([]auditChange) bool) []auditChange {
	t.Helper()
	b := newBrowser(t, adminURL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var h struct {
			Changes []auditChange `json:"changes"`
		}
		if err := json.Unmarshal([]byte(b.page("/flags/"+url.PathEscape(name)+"/history.json?kind=flag")), &h); err != nil {
			t.Fatal(err)
		}
		if done(h.Changes) {
			return h.Changes
		}
		if time.Now().After(deadline) {
			t.Fatalf("history of %s after 10s: %+v", name, h.Changes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// adminLogin logs in through Django's admin login form.
func adminLogin(b *browser, user, password string) {
	b.t.Helper()
	form := adminForm(b.t, b.page("/admin/login/?next=/admin/"))
	form.Set("username", user)
	form.Set("password", password)
	if code, body := b.post("/admin/login/?next=/admin/", form); code != http.StatusFound || b.cookie("sessionid") == "" {
		b.t.Fatalf("admin login: %d\n%s", code, errorsOf(body))
	}
}

// post submits a form and returns the status and body.
func (b *browser) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.base.String()+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	inputRE     = regexp.MustCompile(`<input\b[^>]*>`)
	selectRE    = regexp.MustCompile(`(?s)<select\b([^>]*)>(.*?)</select>`)
	textareaRE  = regexp.MustCompile(`(?s)<textarea\b([^>]*)>(.*?)</textarea>`)
	optionRE    = regexp.MustCompile(`<option\b([^>]*)>`)
	attributeRE = regexp.MustCompile(`([a-zA-Z_-]+)(?:="([^"]*)")?`)
)

// attrs parses the attributes of one tag.
func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attributeRE.FindAllStringSubmatch(s, -1) {
		m[a[1]] = html.UnescapeString(a[2])
	}
	return m
}

// adminForm returns what a browser would submit from the page's form as
// it stands: text, hidden and number inputs, checked boxes, selected
// options and textareas (Django's admin renders them plainly).
func adminForm(t *testing.T, page string) url.Values {
	t.Helper()
	v := url.Values{}
	for _, tag := range inputRE.FindAllString(page, -1) {
		a := attrs(strings.TrimSuffix(strings.TrimPrefix(tag, "<input"), ">"))
		switch a["type"] {
		case "submit":
		case "checkbox":
			if _, on := a["checked"]; on {
				v.Add(a["name"], "on")
			}
		default:
			if a["name"] != "" {
				v.Add(a["name"], a["value"])
			}
		}
	}
	for _, m := range selectRE.FindAllStringSubmatch(page, -1) {
		name := attrs(m[1])["name"]
		for _, o := range optionRE.FindAllStringSubmatch(m[2], -1) {
			if oa := attrs(o[1]); hasKey(oa, "selected") {
				v.Add(name, oa["value"])
			}
		}
	}
	for _, m := range textareaRE.FindAllStringSubmatch(page, -1) {
		v.Add(attrs(m[1])["name"], html.UnescapeString(strings.TrimPrefix(m[2], "\n")))
	}
	if v.Get("csrfmiddlewaretoken") == "" {
		t.Fatalf("no CSRF token in the form:\n%s", page)
	}
	return v
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// errorsOf returns the error notes of an admin page, or the page.
func errorsOf(page string) string {
	if m := regexp.MustCompile(`(?s)<ul class="errorlist.*?</ul>`).FindAllString(page, -1); m != nil {
		return strings.Join(m, "\n")
	}
	return page
}
