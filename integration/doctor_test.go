//go:build integration

package integration

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// doctorSeedPy makes a superuser for the probe session and a flag of each
// library the test site has.
const doctorSeedPy = `
from django.contrib.auth.models import User
from waffle.models import Flag, Switch
from featureflipper.models import Feature
from flags.models import FeatureFlag
User.objects.create_superuser("root", password="pw")
Flag.objects.create(name="beta", everyone=True)
Switch.objects.create(name="maintenance", active=False)
Feature.objects.create(name="search", enabled=True)
FeatureFlag.objects.create(key="checkout", enabled=True)
`

// doctorMiddleware is the test site's MIDDLEWARE with flagproxy's
// middleware instead of waffle's.
const doctorMiddleware = `"MIDDLEWARE": ["django.contrib.sessions.middleware.SessionMiddleware",
	"django.middleware.common.CommonMiddleware", "django.contrib.auth.middleware.AuthenticationMiddleware",
	"django.contrib.messages.middleware.MessageMiddleware", "flagproxy_django.middleware.FlagproxyMiddleware"`

// runDoctor runs manage.py flagproxy_doctor under the site settings extra
// (JSON members) and returns its output and exit status.
func runDoctor(t *testing.T, dbURL, extra string, args ...string) (string, int) {
	t.Helper()
	env := []string{"FLAGPROXY_DJANGO_SETTINGS={" + extra + "}"}
	out, err := manageCmd(dbURL, env, append([]string{"flagproxy_doctor"}, args...)...).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("flagproxy_doctor: %v", err)
	}
	if exit != nil {
		return string(out), exit.ExitCode()
	}
	return string(out), 0
}

// TestDoctor runs manage.py flagproxy_doctor against the test site behind
// the flagproxy binary: it passes on a correct setup, then catches a
// flagproxy with another SECRET_KEY, a settings file the site's settings
// have moved past, and WaffleMiddleware left installed, each with its advice.
func TestDoctor(t *testing.T) {
	t.Parallel()
	requireDjango(t)
	db := newSQLiteSite(t)
	manage(t, db.URL, "shell", "-c", doctorSeedPy)
	good := doctorMiddleware + `]`
	settings := filepath.Join(t.TempDir(), "flagproxy.json")
	manageEnv(t, db.URL, []string{"FLAGPROXY_DJANGO_SETTINGS={" + good + "}"}, "flagproxy_settings", "-o", settings)
	site := django(t, "runserver", db.URL, "FLAGPROXY_DJANGO_SETTINGS={"+good+"}")
	proxyURL, adminURL := flagproxy(t, site, db.URL, "--django-settings", settings)
	urls := []string{"--proxy-url", proxyURL, "--admin-url", adminURL}

	out, code := runDoctor(t, db.URL, good, append(urls, "--settings-file", settings)...)
	for _, want := range []string{"[ ok ] middleware", "[ ok ] settings file", "[ ok ] proxy in front",
		"[ ok ] signature", "[ ok ] sessions: flagproxy recognises a session made here for user 'root'",
		"[ ok ] database", "1 featureflag flags", "1 featureflipper flags", "1 waffle flags", "1 waffle switches",
		"flagproxy and this site agree."} {
		if !strings.Contains(out, want) {
			t.Errorf("correct setup: no %q in\n%s", want, out)
		}
	}
	if code != 0 {
		t.Fatalf("correct setup: exit status %d\n%s", code, out)
	}

	t.Run("wrong SECRET_KEY", func(t *testing.T) {
		wrong := rewriteSettings(t, settings, "SECRET_KEY", "not-the-site-key")
		proxyURL, adminURL := flagproxy(t, site, db.URL, "--django-settings", wrong)
		out, code := runDoctor(t, db.URL, good, "--proxy-url", proxyURL, "--admin-url", adminURL, "--settings-file", wrong)
		expect(t, out, code, "[FAIL] sessions: flagproxy took a session made here for user 'root' (pk 1) for an anonymous visitor",
			"SECRET_KEY probably differs", "[FAIL] settings file", "'SECRET_KEY' differ", "[ ok ] proxy in front")
	})
	t.Run("stale settings file", func(t *testing.T) {
		moved := good + `, "WAFFLE_SECURE": false, "SESSION_COOKIE_AGE": 3600`
		out, code := runDoctor(t, db.URL, moved, append(urls, "--settings-file", settings)...)
		expect(t, out, code, "[FAIL] settings file", "'SESSION_COOKIE_AGE', 'WAFFLE_SECURE' differ",
			"flagproxy_settings -o "+settings, "[ ok ] sessions", "[ ok ] database")
	})
	t.Run("leftover WaffleMiddleware", func(t *testing.T) {
		leftover := doctorMiddleware + `, "waffle.middleware.WaffleMiddleware"]`
		out, code := runDoctor(t, db.URL, leftover, urls...)
		expect(t, out, code, "[FAIL] middleware: waffle.middleware.WaffleMiddleware is still in MIDDLEWARE",
			"Remove 'waffle.middleware.WaffleMiddleware'", "[ ok ] proxy in front")
		check, err := manageCmd(db.URL, []string{"FLAGPROXY_DJANGO_SETTINGS={" + leftover + "}"}, "check").CombinedOutput()
		if err != nil || !strings.Contains(string(check), "flagproxy.W002") {
			t.Errorf("manage.py check: %v, no flagproxy.W002 in\n%s", err, check)
		}
	})
}

// expect fails unless the doctor exited with status 1 and said each of wants.
func expect(t *testing.T, out string, code int, wants ...string) {
	t.Helper()
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// rewriteSettings writes a copy of a settings file with one key changed.
func rewriteSettings(t *testing.T, path, key string, value any) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = value
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "flagproxy.json")
	if err := os.WriteFile(copyPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return copyPath
}
