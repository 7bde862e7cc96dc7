//go:build integration

package integration

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDjangoBehindFlagproxy puts flagproxy in front of the real Django test
// site, on SQLite under runserver and on PostgreSQL under gunicorn, and
// checks what Django saw: every flag, switch and sample of every source; no
// client-supplied X-Flagproxy-* value; committed changes (SQL and waffle's
// own management command) within two seconds.
func TestDjangoBehindFlagproxy(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, db *siteDB, server string) {
		seed(t, db)
		upstream := django(t, server, db.URL)
		proxyURL, adminURL := flagproxy(t, upstream, db.URL)
		checkSkeleton(t, db, proxyURL, adminURL)
	})
}

func seed(t *testing.T, db *siteDB) {
	t.Helper()
	now := "CURRENT_TIMESTAMP"
	db.Exec(t, `INSERT INTO waffle_flag (name, everyone, percent, testing, superusers, staff, authenticated, languages, rollout, note, created, modified)
		VALUES ('w_on', ?, NULL, ?, ?, ?, ?, '', ?, '', `+now+`, `+now+`),
		       ('w_rules', NULL, NULL, ?, ?, ?, ?, '', ?, '', `+now+`, `+now+`),
		       ('shared', ?, NULL, ?, ?, ?, ?, '', ?, '', `+now+`, `+now+`)`,
		true, false, true, false, false, false,
		false, true, true, false, false,
		true, false, true, false, false, false)
	db.Exec(t, `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES ('sw_on', ?, '', `+now+`, `+now+`), ('sw_off', ?, '', `+now+`, `+now+`)`, true, false)
	db.Exec(t, `INSERT INTO waffle_sample (name, percent, note, created, modified) VALUES ('always', 100.0, '', `+now+`, `+now+`), ('never', 0.0, '', `+now+`, `+now+`)`)
	db.Exec(t, `INSERT INTO featureflipper_feature (name, description, enabled) VALUES ('search', '', ?), ('shared', '', ?)`, true, false)
	db.Exec(t, `INSERT INTO flags_featureflag (key, enabled, rollout_percent) VALUES ('everyone-ff', ?, 100), ('partial-ff', ?, 50)`, true, true)
}

func checkSkeleton(t *testing.T, db *siteDB, proxyURL, adminURL string) {
	// Hostile headers in every spelling Django could read as ours.
	e := rawGet(t, proxyURL, "/echo/?enable_search&session_enable_x=1;y",
		`X-Flagproxy-Flags: {"flags":{"w_rules":true}}`,
		`x-flagproxy-signature: t=1,v1=00`,
		`X_Flagproxy_Flags: {"flags":{"w_rules":true}}`,
		`X-FLAGPROXY-FLAGS-1: forged`,
		`X-Flagproxy-Evil: 1`,
		`Connection: X-Flagproxy-Flags`,
		`X-Forwarded-For: 6.6.6.6`,
	)
	if e.Path != "/echo/?enable_search&session_enable_x=1;y" {
		t.Errorf("Django saw path %q; the URL must reach it unchanged", e.Path)
	}
	for k, v := range e.Meta {
		if strings.HasPrefix(k, "HTTP_X_FLAGPROXY") && k != "HTTP_X_FLAGPROXY_FLAGS" {
			t.Errorf("Django saw %s = %q; only flagproxy's own header may reach it", k, v)
		}
	}
	if ff := e.Meta["HTTP_X_FORWARDED_FOR"]; ff != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the direct peer only", ff)
	}
	f := decodeFlags(t, e)
	want := flags{
		Flags: map[string]bool{
			"w_on": true, "w_rules": false, "shared": false, "search": true,
			"everyone-ff": true, "partial-ff": false,
		},
		Switches: map[string]bool{"sw_on": true, "sw_off": false},
		Samples:  map[string]bool{"always": true, "never": false},
	}
	for _, m := range []struct {
		kind      string
		got, want map[string]bool
	}{{"flags", f.Flags, want.Flags}, {"switches", f.Switches, want.Switches}, {"samples", f.Samples, want.Samples}} {
		if len(m.got) != len(m.want) {
			t.Errorf("%s: got %v, want %v", m.kind, m.got, m.want)
		}
		for k, v := range m.want {
			if got, ok := m.got[k]; !ok || got != v {
				t.Errorf("%s[%q] = %v (present %v), want %v", m.kind, k, got, ok, v)
			}
		}
	}
	if got := f.Conflicts["shared"]; strings.Join(got, ",") != "featureflipper,waffle" {
		t.Errorf("conflicts = %v, want shared: [featureflipper waffle]", f.Conflicts)
	}
	if f.State != "ok" || f.Version == "" {
		t.Errorf("state %q version %q", f.State, f.Version)
	}

	// /readyz says the version and age; /metrics has our families.
	resp, err := http.Get(adminURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Ready   bool    `json:"ready"`
		Version string  `json:"version"`
		Age     float64 `json:"age_seconds"`
	}
	json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if !ready.Ready || ready.Version != f.Version || ready.Age < 0 || ready.Age > 5 {
		t.Errorf("/readyz = %+v, want ready, version %s, a small age", ready, f.Version)
	}
	resp, err = http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"flagproxy_requests_total", "flagproxy_snapshot_loads_total", "flagproxy_snapshot_load_errors_total",
		"flagproxy_snapshot_age_seconds", `flagproxy_snapshot_flags{source="waffle"}`, "flagproxy_request_duration_seconds"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// A committed UPDATE reaches the header within two seconds.
	db.Exec(t, `UPDATE waffle_flag SET everyone = ? WHERE name = 'w_rules'`, true)
	waitForFlag(t, proxyURL, "w_rules", true, 2*time.Second)

	// So do changes made with waffle's own management commands. The two
	// seconds run from the command's exit (its commit comes just before);
	// the log also gives the time from its start.
	begun := time.Now()
	manage(t, db.URL, "waffle_flag", "w_rules", "--deactivate")
	waitForFlag(t, proxyURL, "w_rules", false, 2*time.Second)
	t.Logf("manage.py waffle_flag w_rules --deactivate: %v from start to header", time.Since(begun).Round(time.Millisecond))
	begun = time.Now()
	manage(t, db.URL, "waffle_switch", "sw_off", "on")
	start := time.Now()
	for {
		if decodeFlags(t, rawGet(t, proxyURL, "/echo/")).Switches["sw_off"] {
			t.Logf("waffle_switch change visible after %v (%v from the command's start)",
				time.Since(start).Round(time.Millisecond), time.Since(begun).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatal("manage.py waffle_switch sw_off on not visible within 2s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitForFlag(t *testing.T, proxyURL, name string, want bool, limit time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		f := decodeFlags(t, rawGet(t, proxyURL, "/echo/"))
		if f.Flags[name] == want {
			t.Logf("%s=%v visible after %v", name, want, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > limit {
			t.Fatalf("%s still %v after %v", name, f.Flags[name], limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBadDatabaseExitsTwo runs the binary with broken --database values.
func TestBadDatabaseExitsTwo(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"mysql://u@h/db", "sqlite:///no/such/file.db", "postgres://u:pw@host"} {
		cmd := exec.Command(flagproxyBinary(t), "serve", "--database", u)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("--database %q: %v, want exit status 2\n%s", u, err, out)
		}
		if !strings.Contains(string(out), "--database") {
			t.Errorf("--database %q: message does not name the option:\n%s", u, out)
		}
	}
}

// TestLargeHeaderThroughGunicorn seeds enough switches to need the parts
// encoding and checks that gunicorn hands every part to Django and that
// they decode to the full set.
func TestLargeHeaderThroughGunicorn(t *testing.T) {
	t.Parallel()
	requireDjango(t, "gunicorn")
	db := newSQLiteSite(t)
	const n = 2000
	for i := 0; i < n; i += 500 {
		q := `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES `
		var args []any
		for j := i; j < i+500; j++ {
			if j > i {
				q += ", "
			}
			q += `(?, ?, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`
			sum := sha256.Sum256([]byte{byte(j), byte(j >> 8)})
			args = append(args, fmt.Sprintf("switch_%04d_%x", j, sum[:6]), j%2 == 0)
		}
		db.Exec(t, q, args...)
	}
	upstream := django(t, "gunicorn", db.URL)
	proxyURL, _ := flagproxy(t, upstream, db.URL)
	e := rawGet(t, proxyURL, "/echo/")
	var ptr struct {
		Encoding string `json:"encoding"`
		Parts    int    `json:"parts"`
		SHA256   string `json:"sha256"`
	}
	if err := json.Unmarshal([]byte(e.Meta["HTTP_X_FLAGPROXY_FLAGS"]), &ptr); err != nil || ptr.Encoding != "gzip+base64url" || ptr.Parts < 2 {
		t.Fatalf("pointer %q (%v): want the parts form", e.Meta["HTTP_X_FLAGPROXY_FLAGS"], err)
	}
	var text strings.Builder
	for i := 1; i <= ptr.Parts; i++ {
		part, ok := e.Meta[fmt.Sprintf("HTTP_X_FLAGPROXY_FLAGS_%d", i)]
		if !ok {
			t.Fatalf("Django did not receive part %d of %d", i, ptr.Parts)
		}
		text.WriteString(part)
	}
	zipped, err := base64.RawURLEncoding.DecodeString(text.String())
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != ptr.SHA256 {
		t.Fatal("parts do not match the digest")
	}
	var f flags
	if err := json.Unmarshal(body, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Switches) != n || f.State != "ok" {
		t.Errorf("decoded %d switches, state %q; want %d, ok", len(f.Switches), f.State, n)
	}
	t.Logf("%d switches: %d bytes of JSON in %d parts", n, len(body), ptr.Parts)
}
