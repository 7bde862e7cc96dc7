//go:build integration

package integration

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const testSecretKey = "flagproxy-test-secret-key-not-for-production"

// TestIdentityThroughFlagproxy logs users in through Django's own login(),
// sends their session cookies through flagproxy, and checks that the header
// carries each user's waffle user, group, staff, superuser and
// authenticated rules and FeatureFlag allow-list and bucket; then that a
// logout, a password change and a deactivation made in Django reach the
// header within the identity cache's TTL.
func TestIdentityThroughFlagproxy(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, db *siteDB, server string) {
		ids := map[string]string{}
		out := manage(t, db.URL, "shell", "-c", seedUsersPy)
		if err := json.Unmarshal([]byte(lastLine(out)), &ids); err != nil {
			t.Fatalf("seed output %q: %v", out, err)
		}
		upstream := django(t, server, db.URL)
		settings := settingsFile(t, "")
		const ttl = time.Second
		proxyURL, _ := flagproxy(t, upstream, db.URL, "--django-settings", settings, "--identity-cache-ttl", ttl.String())

		bucket := func(key, pk string) bool {
			sum := sha256.Sum256([]byte(key + ":" + pk))
			r := 0
			for _, b := range sum {
				r = (r*256 + int(b)) % 100
			}
			return r < 50
		}
		want := map[string]map[string]bool{
			"": {"f_staff": false, "f_super": false, "f_users": false, "f_groups": false, "f_auth": false, "ff-allow": false, "ff-bucket": false},
			"alice": {"f_staff": true, "f_super": false, "f_users": false, "f_groups": false, "f_auth": true, "ff-allow": false,
				"ff-bucket": bucket("ff-bucket", ids["alice"])},
			"bob": {"f_staff": false, "f_super": false, "f_users": false, "f_groups": true, "f_auth": true, "ff-allow": false,
				"ff-bucket": bucket("ff-bucket", ids["bob"])},
			"carol": {"f_staff": false, "f_super": false, "f_users": true, "f_groups": false, "f_auth": true, "ff-allow": true,
				"ff-bucket": bucket("ff-bucket", ids["carol"])},
			"root": {"f_staff": true, "f_super": true, "f_users": false, "f_groups": false, "f_auth": true, "ff-allow": false,
				"ff-bucket": bucket("ff-bucket", ids["root"])},
		}
		cookies := map[string]string{"": ""}
		for _, u := range []string{"alice", "bob", "carol", "root"} {
			cookies[u] = loginThrough(t, proxyURL, u)
		}
		for user, flagsWant := range want {
			e := rawGet(t, proxyURL, "/echo/", cookieLine(cookies[user]))
			if got := e.User.ID; got != ids[user] {
				t.Errorf("%s: Django saw user %q, want %q", orAnon(user), got, ids[user])
			}
			f := decodeFlags(t, e)
			for name, w := range flagsWant {
				if f.Flags[name] != w {
					t.Errorf("%s: %s = %v, want %v", orAnon(user), name, f.Flags[name], w)
				}
			}
		}

		// Changes made in Django: each visitor becomes anonymous, as
		// Django then sees them, within the TTL.
		logout(t, proxyURL, cookies["alice"])
		manage(t, db.URL, "shell", "-c", `from django.contrib.auth.models import User; u = User.objects.get(username="bob"); u.set_password("changed"); u.save()`)
		manage(t, db.URL, "shell", "-c", `from django.contrib.auth.models import User; User.objects.filter(username="carol").update(is_active=False)`)
		start := time.Now()
		for _, user := range []string{"alice", "bob", "carol"} {
			for {
				e := rawGet(t, proxyURL, "/echo/", cookieLine(cookies[user]))
				f := decodeFlags(t, e)
				if e.User.ID == "" && !f.Flags["f_auth"] && !f.Flags["ff-allow"] && !f.Flags["f_groups"] {
					t.Logf("%s anonymous for flagproxy after %v", user, time.Since(start).Round(time.Millisecond))
					break
				}
				if time.Since(start) > ttl+2*time.Second {
					if e.User.ID != "" {
						t.Fatalf("%s: Django itself still sees user %s after the change", user, e.User.ID)
					}
					t.Fatalf("%s: Django sees an anonymous visitor but flagproxy still decides %v after %v (TTL %v)", user, f.Flags, time.Since(start), ttl)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		// root is untouched and still recognised.
		if f := decodeFlags(t, rawGet(t, proxyURL, "/echo/", cookieLine(cookies["root"]))); !f.Flags["f_super"] {
			t.Error("root lost its superuser flag")
		}
	})
}

const seedUsersPy = `
import json
from django.contrib.auth.models import Group, User
from waffle.models import Flag
from flags.models import FeatureFlag
beta = Group.objects.create(name="beta")
alice = User.objects.create_user("alice", password="pw", is_staff=True)
bob = User.objects.create_user("bob", password="pw")
bob.groups.add(beta)
carol = User.objects.create_user("carol", password="pw")
root = User.objects.create_superuser("root", email="root@example.com", password="pw")
Flag.objects.create(name="f_staff", staff=True, superusers=False)
Flag.objects.create(name="f_super", superusers=True)
Flag.objects.create(name="f_users", superusers=False).users.add(carol)
Flag.objects.create(name="f_groups", superusers=False).groups.add(beta)
Flag.objects.create(name="f_auth", authenticated=True, superusers=False)
FeatureFlag.objects.create(key="ff-allow", enabled=True, rollout_percent=0).allowed_users.add(carol)
FeatureFlag.objects.create(key="ff-bucket", enabled=True, rollout_percent=50)
print(json.dumps({u.username: str(u.pk) for u in User.objects.all()}))
`

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func orAnon(user string) string {
	if user == "" {
		return "anonymous"
	}
	return user
}

func cookieLine(sessionID string) string {
	if sessionID == "" {
		return "X-Anonymous: 1"
	}
	return "Cookie: sessionid=" + sessionID
}

// loginThrough logs a user in with Django's login view, through the proxy,
// and returns the session cookie Django set.
func loginThrough(t *testing.T, proxyURL, user string) string {
	t.Helper()
	resp, err := http.PostForm(proxyURL+"/login/", url.Values{"username": {user}, "password": {"pw"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "sessionid" && c.Value != "" {
			return c.Value
		}
	}
	t.Fatalf("login %s: status %d, no sessionid cookie", user, resp.StatusCode)
	return ""
}

func logout(t *testing.T, proxyURL, sessionID string) {
	t.Helper()
	req, _ := http.NewRequest("POST", proxyURL+"/logout/", nil)
	req.Header.Set("Cookie", "sessionid="+sessionID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
