//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOverridesThroughFlagproxy checks who may flip with real Django auth
// tables: a user with the permission directly, one with it through a
// group, and an active superuser can; a user without it, a staff user, a
// superuser whose account was deactivated and an anonymous visitor cannot.
// Session overrides last across requests, go away with
// session_clear_features, never reach another user, and a tampered cookie
// changes nothing; feature_status_ entries in the Django session count for
// everyone; with FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING anyone may flip.
func TestOverridesThroughFlagproxy(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, db *siteDB, server string) {
		manage(t, db.URL, "shell", "-c", seedFlippersPy)
		upstream := django(t, server, db.URL)
		settings := settingsFile(t, "")
		proxyURL, _ := flagproxy(t, upstream, db.URL, "--django-settings", settings, "--override-cookie-secure=false", "--identity-cache-ttl", "1s")

		sessions := map[string]string{"anonymous": ""}
		for _, u := range []string{"direct", "grouped", "root", "plain", "staffer", "eve"} {
			sessions[u] = loginThrough(t, proxyURL, u)
		}
		// eve is a superuser whose account is then deactivated.
		manage(t, db.URL, "shell", "-c", `from django.contrib.auth.models import User; User.objects.filter(username="eve").update(is_active=False)`)
		time.Sleep(1200 * time.Millisecond) // let eve's cached identity expire (TTL 1 s below)

		for user, may := range map[string]bool{"direct": true, "grouped": true, "root": true, "plain": false, "staffer": false, "eve": false, "anonymous": false} {
			f, _ := overrideGet(t, proxyURL, "/echo/?enable_search&enable_wf&enable_ffk", sessions[user], "")
			for _, name := range []string{"search", "wf", "ffk"} {
				if f.Flags[name] != may {
					t.Errorf("%s: enable_%s gave %v, want %v", user, name, f.Flags[name], may)
				}
			}
			if may && f.Sources["search"] != "url" {
				t.Errorf("%s: source of search = %q, want url", user, f.Sources["search"])
			}
		}

		// Session overrides last, and are cleared.
		_, stored := overrideGet(t, proxyURL, "/echo/?session_enable_search&session_disable_on_flag", sessions["direct"], "")
		if stored == "" {
			t.Fatal("no override cookie after session_enable_")
		}
		for range 2 {
			f, _ := overrideGet(t, proxyURL, "/echo/", sessions["direct"], stored)
			if !f.Flags["search"] || f.Flags["on_flag"] || f.Sources["search"] != "session" {
				t.Fatalf("stored overrides not applied: %v %v", f.Flags, f.Sources)
			}
		}
		// Never for another user, even a permitted one; never tampered.
		if f, _ := overrideGet(t, proxyURL, "/echo/", sessions["grouped"], stored); f.Flags["search"] || !f.Flags["on_flag"] {
			t.Errorf("direct's stored overrides reached grouped: %v", f.Flags)
		}
		if f, _ := overrideGet(t, proxyURL, "/echo/", sessions["plain"], stored); f.Flags["search"] {
			t.Errorf("direct's stored overrides reached plain: %v", f.Flags)
		}
		tampered := []byte(stored)
		tampered[len(tampered)/2] ^= 2
		if f, _ := overrideGet(t, proxyURL, "/echo/", sessions["direct"], string(tampered)); f.Flags["search"] {
			t.Errorf("a tampered cookie applied: %v", f.Flags)
		}
		f, cleared := overrideGet(t, proxyURL, "/echo/?session_clear_features", sessions["direct"], stored)
		if f.Flags["search"] || !f.Flags["on_flag"] {
			t.Errorf("after session_clear_features: %v", f.Flags)
		}
		if f, _ := overrideGet(t, proxyURL, "/echo/", sessions["direct"], cleared); f.Flags["search"] {
			t.Errorf("cleared overrides came back: %v", f.Flags)
		}

		// A feature_status_ entry written into the Django session by
		// the site counts for any visitor, as in feature-flipper.
		rawGet(t, proxyURL, "/feature_status/?name=search&value=enabled", cookieLine(sessions["plain"]))
		time.Sleep(1200 * time.Millisecond) // the identity cache's TTL
		if f := decodeFlags(t, rawGet(t, proxyURL, "/echo/", cookieLine(sessions["plain"]))); !f.Flags["search"] || f.Sources["search"] != "session" {
			t.Errorf("feature_status_search in plain's Django session: %v %v", f.Flags, f.Sources)
		}

		// Anonymous flipping.
		anonSettings := settingsFile(t, `, "FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING": true`)
		anonProxy, _ := flagproxy(t, upstream, db.URL, "--django-settings", anonSettings, "--override-cookie-secure=false")
		if f, _ := overrideGet(t, anonProxy, "/echo/?enable_search", "", ""); !f.Flags["search"] {
			t.Errorf("anonymous flipping on: enable_search gave %v", f.Flags["search"])
		}
	})
}

// overrideGet sends a request with a session cookie and an override
// cookie and returns the flags Django saw and the override cookie after
// the request (the new one if set, else the one sent).
func overrideGet(t *testing.T, base, path, session, override string) (flags, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	var parts []string
	if session != "" {
		parts = append(parts, "sessionid="+session)
	}
	if override != "" {
		parts = append(parts, "flagproxy_overrides="+override)
	}
	if len(parts) > 0 {
		req.Header.Set("Cookie", strings.Join(parts, "; "))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "flagproxy_overrides" {
			override = c.Value
		}
	}
	return decodeFlags(t, e), override
}

const seedFlippersPy = `
from django.contrib.auth.models import Group, Permission, User
from featureflipper.models import Feature
from waffle.models import Flag
from flags.models import FeatureFlag
flip = Permission.objects.get(content_type__app_label="featureflipper", codename="can_flip_with_url")
flippers = Group.objects.create(name="flippers")
flippers.permissions.add(flip)
User.objects.create_user("direct", password="pw").user_permissions.add(flip)
User.objects.create_user("grouped", password="pw").groups.add(flippers)
User.objects.create_superuser("root", email="root@example.com", password="pw")
User.objects.create_user("plain", password="pw")
User.objects.create_user("staffer", password="pw", is_staff=True)
User.objects.create_superuser("eve", email="eve@example.com", password="pw")
Feature.objects.create(name="search", enabled=False)
Feature.objects.create(name="on_flag", enabled=True)
Flag.objects.create(name="wf", superusers=False)
FeatureFlag.objects.create(key="ffk", enabled=False)
`
