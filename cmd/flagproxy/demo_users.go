package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flagproxy/flagproxy/djangodb"
)

// demoUsers are the sample users the demo page logs in as.
var demoUsers = []struct{ Name, PK, Note string }{
	{"alice", "1", "may flip: has flagproxy_django.can_flip_with_url"},
	{"bob", "2", "a plain user, in the beta-testers group"},
	{"carol", "3", "staff"},
}

// demoUserCookie tells the demo page who logged in (the session cookie
// itself is Django's sessionid).
const demoUserCookie = "demo_user"

// demoAdmin is where the demo's admin listener is, once it listens.
type demoAdmin struct{ url atomic.Pointer[string] }

func (a *demoAdmin) set(u string) { a.url.Store(&u) }

// get fetches path from the admin listener into v.
func (a *demoAdmin) get(ctx context.Context, path string, v any) error {
	u := a.url.Load()
	if u == nil {
		return context.Canceled
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *u+path, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return json.NewDecoder(res.Body).Decode(v)
}

// rules returns each name's rule in words and note, by "kind name", from
// the admin listener's /flags.json (empty while it is not up).
func (a *demoAdmin) rules(ctx context.Context) map[string][2]string {
	var rep struct {
		Flags, Switches, Samples []struct{ Kind, Name, Rule, Note string }
	}
	out := map[string][2]string{}
	if a.get(ctx, "/flags.json", &rep) != nil {
		return out
	}
	for _, list := range [][]struct{ Kind, Name, Rule, Note string }{rep.Flags, rep.Switches, rep.Samples} {
		for _, e := range list {
			out[e.Kind+" "+e.Name] = [2]string{e.Rule, e.Note}
		}
	}
	return out
}

// version returns the proxy's current snapshot version ("" if unknown).
func (a *demoAdmin) version(ctx context.Context) string {
	var r struct{ Version string }
	_ = a.get(ctx, "/readyz", &r)
	return r.Version
}

// waitForNewVersion waits, up to three seconds, until the proxy has loaded
// a snapshot other than old, so that the page the visitor lands on after a
// flip already shows it. It reports whether it did.
func (a *demoAdmin) waitForNewVersion(ctx context.Context, old string) bool {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if v := a.version(ctx); v != "" && v != old {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// login logs the visitor in as a sample user, as Django's login() would,
// or out.
func (s *demoSite) login(w http.ResponseWriter, r *http.Request) {
	name := r.PostFormValue("user")
	for _, u := range demoUsers {
		if u.Name != name {
			continue
		}
		key, err := djangodb.Login(r.Context(), s.db, djangodb.SQLite, djangodb.SessionConfig{SecretKey: demoSecretKey, UseTZ: true}, u.PK, 14*24*time.Hour)
		if err != nil {
			http.Error(w, "demo login: "+err.Error(), http.StatusInternalServerError)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "sessionid", Value: key, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.SetCookie(w, &http.Cookie{Name: demoUserCookie, Value: u.Name, Path: "/", SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	for _, c := range []string{"sessionid", demoUserCookie} {
		http.SetCookie(w, &http.Cookie{Name: c, Value: "", Path: "/", MaxAge: -1})
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// whoIs returns the sample user the visitor logged in as, or "".
func whoIs(r *http.Request) string {
	c, err := r.Cookie(demoUserCookie)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(c.Value)
}
