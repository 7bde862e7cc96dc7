package djangodb

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestKeyWatch: the warning comes only after more than badSignatureRun bad
// signatures in a row, a verified session ends the run, answers that say
// nothing about the key do not, and the warning repeats at most once per
// badSignatureLogEvery.
func TestKeyWatch(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	var w keyWatch
	warnings := 0
	feed := func(r Reason, at time.Time) {
		if _, warn := w.observe(r, at); warn {
			warnings++
		}
	}
	for range badSignatureRun {
		feed(ReasonBadSignature, start)
	}
	feed(ReasonAuthenticated, start) // a good session: the key verifies
	for range badSignatureRun {
		feed(ReasonBadSignature, start)
	}
	if warnings != 0 {
		t.Fatalf("%d warnings for runs of %d, want none", warnings, badSignatureRun)
	}
	feed(ReasonNoRow, start) // neutral: says nothing about the key
	feed(ReasonDatabaseError, start)
	feed(ReasonBadSignature, start)
	if warnings != 1 {
		t.Fatalf("%d warnings after a run of %d, want 1", warnings, badSignatureRun+1)
	}
	for range 100 {
		feed(ReasonBadSignature, start.Add(badSignatureLogEvery-time.Second))
	}
	if warnings != 1 {
		t.Fatalf("%d warnings within %v, want 1", warnings, badSignatureLogEvery)
	}
	feed(ReasonBadSignature, start.Add(badSignatureLogEvery))
	if warnings != 2 {
		t.Fatalf("%d warnings after %v, want 2", warnings, badSignatureLogEvery)
	}
	for _, r := range []Reason{ReasonAnonymousSession, ReasonHashMismatch, ReasonUserInactive, ReasonExpired} {
		if run, _ := w.observe(r, start); run != 0 {
			t.Errorf("after %s the run is %d, want 0", r, run)
		}
		w.observe(ReasonBadSignature, start)
	}
}

// TestWrongSecretKeyLogged: real Django sessions signed with the site's key,
// resolved by an identity cache holding another key, log the warning once,
// naming the setting to check; with the right key nothing is logged.
func TestWrongSecretKeyLogged(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		var keys []string
		for i := range badSignatureRun + 3 {
			key := fmt.Sprintf("k%02dwatch0123456789abcdefghijkl", i)
			loginSession(t, db, key, "site-key")
			keys = append(keys, key)
		}
		for _, tc := range []struct {
			secret string
			want   int
		}{{"site-key", 0}, {"another-key", 1}} {
			h, err := Open(db.Target)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Close() })
			ids, err := NewIdentities(h, db.Dialect, SessionConfig{SecretKey: tc.secret, UseTZ: true})
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			c, _ := newTestCache(t, IdentityCacheConfig{Resolver: ids, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			for _, key := range keys {
				s, err := c.Subject(t.Context(), cookies(key))
				if err != nil || s.Authenticated != (tc.want == 0) {
					t.Fatalf("key %s: %+v, %v", tc.secret, s, err)
				}
			}
			if got := strings.Count(logs.String(), "SECRET_KEY probably differs"); got != tc.want {
				t.Errorf("with %s: %d warnings, want %d; log:\n%s", tc.secret, got, tc.want, logs.String())
			}
			if tc.want > 0 && !strings.Contains(logs.String(), "--secret-key") {
				t.Errorf("the warning does not name the flag to check:\n%s", logs.String())
			}
		}
	})
}
