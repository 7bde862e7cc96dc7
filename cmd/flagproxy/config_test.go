package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// siteDB creates an empty Django database file and returns its URL.
func siteDB(t *testing.T) string { return siteDBWith(t, "") }

func TestConfigPrecedence(t *testing.T) {
	dbURL := siteDB(t)
	settings := filepath.Join(t.TempDir(), "settings.json")
	os.WriteFile(settings, []byte(`{"SECRET_KEY": "from-file", "WAFFLE_OVERRIDE": true, "WAFFLE_MAX_AGE": 60,
		"WAFFLE_COOKIE": "ab_%s", "SOMETHING_ELSE": {"x": 1}}`), 0o600)
	c, err := parseConfig("serve", []string{"--listen", "127.0.0.1:7000", "--database", dbURL},
		env(map[string]string{
			"FLAGPROXY_LISTEN":          "127.0.0.1:7001", // the flag wins
			"FLAGPROXY_ADMIN_LISTEN":    "127.0.0.1:7002",
			"FLAGPROXY_POLL_INTERVAL":   "250ms",
			"FLAGPROXY_DJANGO_SETTINGS": settings,
		}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7000" || c.AdminListen != "127.0.0.1:7002" || c.PollInterval != 250*time.Millisecond {
		t.Errorf("listen %s, admin %s, interval %v", c.Listen, c.AdminListen, c.PollInterval)
	}
	if c.Upstream != DefaultUpstream || c.StaleAfter != DefaultStaleAfter {
		t.Errorf("defaults not applied: upstream %s, stale-after %v", c.Upstream, c.StaleAfter)
	}
	if c.SecretKey != "from-file" {
		t.Errorf("SECRET_KEY from the settings file not used: %q", c.SecretKey)
	}
	want := engine.DefaultWaffleSettings()
	want.Override, want.MaxAge, want.Cookie = true, 60, "ab_%s"
	if c.django.Waffle != want {
		t.Errorf("waffle settings = %+v, want %+v", c.django.Waffle, want)
	}

	// A flag wins over the settings file.
	c, err = parseConfig("serve", []string{"--secret-key", "from-flag", "--database", dbURL, "--django-settings", settings}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.SecretKey != "from-flag" {
		t.Errorf("secret key = %q, want the flag's", c.SecretKey)
	}
}

// TestInvalidConfigurationNamesEveryProblem checks the contract of issue
// #2: one message naming every problem, exit status 2, nothing started.
func TestInvalidConfigurationNamesEveryProblem(t *testing.T) {
	settings := filepath.Join(t.TempDir(), "settings.json")
	os.WriteFile(settings, []byte(`{"WAFFLE_OVERRIDE": "yes", "SESSION_COOKIE_AGE": "long", "WAFFLE_COOKIE": "dwf"}`), 0o600)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{
		"serve", "--database", "mysql://u@h/db", "--upstream", "ftp://x", "--listen", "nope",
		"--django-settings", settings, "--poll-interval", "0s", "--sources", "waffle,bogus", "--trusted-proxies", "10.0.0.0/8,not-an-ip",
	}, env(map[string]string{"FLAGPROXY_LOG_LEVEL": "loud"}), &stdout, &stderr)
	if code != 2 {
		t.Fatalf("exit status %d, want 2; stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{
		`--database: invalid database URL: unsupported scheme "mysql"`,
		`--upstream "ftp://x"`,
		`--listen "nope"`,
		`WAFFLE_OVERRIDE must be true or false`,
		`SESSION_COOKIE_AGE must be an integer`,
		`--poll-interval 0s`,
		`unknown source "bogus"`,
		`"not-an-ip" is not a CIDR`,
		`--log-level "loud"`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
}

func TestBadDatabaseExits2(t *testing.T) {
	for _, u := range []string{"sqlite:///does/not/exist.db", "postgres://u:hunter2@h", "nonsense"} {
		var stderr bytes.Buffer
		if code := run(context.Background(), []string{"--database", u}, env(nil), &bytes.Buffer{}, &stderr); code != 2 {
			t.Errorf("--database %q: exit %d, want 2", u, code)
		}
		if !strings.Contains(stderr.String(), "--database") || strings.Contains(stderr.String(), "hunter2") {
			t.Errorf("--database %q: stderr %q should name the option and hide the password", u, stderr.String())
		}
	}
}

func TestHelpDocumentsEveryOption(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "-h"}, env(nil), &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	help := stderr.String()
	for _, want := range []string{"-listen", DefaultListen, "-upstream", DefaultUpstream, "-database", DefaultDatabase,
		"-admin-listen", DefaultAdminListen, "-secret-key", "-django-settings", "FLAGPROXY_<NAME>", "-check-config"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	var stdout bytes.Buffer
	code := run(context.Background(), []string{"--check-config", "--database", siteDB(t)}, env(nil), &stdout, &bytes.Buffer{})
	if code != 0 || !strings.Contains(stdout.String(), "configuration ok") {
		t.Errorf("exit %d, stdout %q", code, stdout.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, env(nil), &bytes.Buffer{}, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
}

// TestCheckConfigCatchesWhatServeWouldRefuse: everything that would stop
// serve later is a configuration error now, so --check-config cannot say ok.
func TestCheckConfigCatchesWhatServeWouldRefuse(t *testing.T) {
	settings := filepath.Join(t.TempDir(), "settings.json")
	os.WriteFile(settings, []byte(`{"WAFFLE_FLAG_MODEL": "bad", "WAFFLE_SWITCH_MODEL": "noDot", "WAFFLE_MAX_AGE": 0}`), 0o600)
	cases := []struct {
		args []string
		says []string
	}{
		{[]string{"--upstream", "http://127.0.0.1:1/?a=1"}, []string{"--upstream"}},
		{[]string{"--django-settings", settings, "--featureflag-app", "my-app"}, []string{
			`WAFFLE_FLAG_MODEL "bad"`, `WAFFLE_SWITCH_MODEL "noDot"`, `"my-app_featureflag" is not a plain SQL identifier`, "WAFFLE_MAX_AGE 0"}},
		{[]string{"--listen", "127.0.0.1:abc"}, []string{`port "abc"`}},
		{[]string{"--listen", "127.0.0.1:99999"}, []string{`port "99999"`}},
		{[]string{"--admin-listen", "256.1.1.1:80"}, []string{`host "256.1.1.1"`}},
		{[]string{"--exposure-log", "/tmp/x.log"}, []string{"--exposure-log needs --exposure-flags"}},
		{[]string{"--exposure-flags", `exp_\`, "--exposure-dedup", "-1h", "--exposure-queue", "0", "--exposure-key", "short",
			"--exposure-log", "tcp://127.0.0.1:9"}, []string{`--exposure-log: "tcp://127.0.0.1:9": unknown scheme`,
			"--exposure-flags: pattern", "--exposure-dedup must not be negative", "--exposure-queue must be positive", "--exposure-key is 5 bytes"}},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		args := append([]string{"--check-config", "--database", siteDB(t)}, c.args...)
		if code := run(context.Background(), args, env(nil), &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stdout %q)", c.args, code, stdout.String())
		}
		for _, s := range c.says {
			if !strings.Contains(stderr.String(), s) {
				t.Errorf("%v: stderr lacks %q:\n%s", c.args, s, stderr.String())
			}
		}
	}
	for _, ok := range []string{"127.0.0.1:0", ":8080", "localhost:8080", "[::1]:9000", "proxy.internal:80"} {
		if err := checkListen(ok); err != nil {
			t.Errorf("checkListen(%q) = %v", ok, err)
		}
	}
}

// TestSecretKeyFallbacksKeptWhole: a key from the settings file is used
// exactly as written, commas and spaces included; only the flag's value is
// a comma-separated list.
func TestSecretKeyFallbacksKeptWhole(t *testing.T) {
	settings := filepath.Join(t.TempDir(), "settings.json")
	os.WriteFile(settings, []byte(`{"SECRET_KEY": "k", "SECRET_KEY_FALLBACKS": ["old-long-secret, x", " padded "], "DJANGO_VERSION": "4.2"}`), 0o600)
	c, err := parseConfig("serve", []string{"--database", siteDB(t), "--django-settings", settings}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.session.SecretKeyFallbacks; len(got) != 2 || got[0] != "old-long-secret, x" || got[1] != " padded " {
		t.Errorf("fallbacks = %q, want the file's two keys unchanged", got)
	}
	c, _ = parseConfig("serve", []string{"--database", siteDB(t), "--django-settings", settings, "--secret-key-fallbacks", "a,b"}, env(nil), io.Discard)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.session.SecretKeyFallbacks; len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("fallbacks from the flag = %q", got)
	}
}
