package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flagproxy/flagproxy/engine"
)

func writeSettings(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "settings.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDefaultLanguagesAreDjangos compares the built-in LANGUAGES with the
// one Django reported when engine/testdata/locale.json was written.
func TestDefaultLanguagesAreDjangos(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "engine", "testdata", "locale.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Configs []struct {
			Name     string
			Settings struct{ LANGUAGES []string }
		}
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, l := range defaultDjangoSettings().Languages {
		codes = append(codes, l[0])
	}
	for _, c := range v.Configs {
		if c.Name == "django-defaults" {
			if !slices.Equal(codes, c.Settings.LANGUAGES) {
				t.Errorf("default LANGUAGES\n%q\nDjango's\n%q", codes, c.Settings.LANGUAGES)
			}
			return
		}
	}
	t.Fatal("no django-defaults configuration in locale.json")
}

func TestLocaleFromSettings(t *testing.T) {
	cases := []struct {
		name, file string
		want       string // LANGUAGE_CODE for Accept-Language "fr-CA" at /fr/x; "" for no LocaleMiddleware
	}{
		{"no file: no LocaleMiddleware", `{}`, ""},
		{"MIDDLEWARE without it", `{"MIDDLEWARE": ["django.contrib.sessions.middleware.SessionMiddleware"]}`, ""},
		{"MIDDLEWARE with it", `{"MIDDLEWARE": ["django.middleware.locale.LocaleMiddleware"]}`, "fr"},
		{"a subclass, reported by flagproxy_settings",
			`{"MIDDLEWARE": ["mysite.MyLocale"], "FLAGPROXY_LOCALE_MIDDLEWARE": true}`, "fr"},
		{"the key wins over MIDDLEWARE",
			`{"MIDDLEWARE": ["django.middleware.locale.LocaleMiddleware"], "FLAGPROXY_LOCALE_MIDDLEWARE": false}`, ""},
		{"site languages", `{"FLAGPROXY_LOCALE_MIDDLEWARE": true, "LANGUAGES": [["fr-ca", "Canadian French"], ["de", "German"]]}`, "fr-ca"},
		{"catalogs", `{"FLAGPROXY_LOCALE_MIDDLEWARE": true, "LANGUAGE_CODE": "de",
			"LANGUAGES": [["fr", "French"], ["de", "German"]], "FLAGPROXY_AVAILABLE_LANGUAGES": ["de"]}`, "de"},
		{"i18n patterns", `{"FLAGPROXY_LOCALE_MIDDLEWARE": true, "FLAGPROXY_I18N_PATTERNS": true,
			"LANGUAGES": [["fr", "French"], ["fr-ca", "Canadian French"]]}`, "fr"},
		{"no i18n", `{"FLAGPROXY_LOCALE_MIDDLEWARE": true, "USE_I18N": false, "LANGUAGE_CODE": "en-GB"}`, "en-GB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := loadDjangoSettings(writeSettings(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			l := s.Locale("3.2")
			if tc.want == "" {
				if l != nil {
					t.Errorf("Locale() = %v, want nil", l)
				}
				return
			}
			if l == nil {
				t.Fatal("Locale() = nil")
			}
			if got := l.Language("/fr/x", engine.Params{}, "fr-CA"); got != tc.want {
				t.Errorf("LANGUAGE_CODE = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLocaleSettingsTypes(t *testing.T) {
	_, err := loadDjangoSettings(writeSettings(t, `{"MIDDLEWARE": "x", "FLAGPROXY_LOCALE_MIDDLEWARE": 1,
		"FLAGPROXY_AVAILABLE_LANGUAGES": [1], "FLAGPROXY_I18N_PATTERNS": "yes", "FLAGPROXY_PREFIX_DEFAULT_LANGUAGE": null}`))
	for _, k := range []string{"MIDDLEWARE", "FLAGPROXY_LOCALE_MIDDLEWARE", "FLAGPROXY_AVAILABLE_LANGUAGES",
		"FLAGPROXY_I18N_PATTERNS", "FLAGPROXY_PREFIX_DEFAULT_LANGUAGE"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("error %v does not name %s", err, k)
		}
	}
}

func TestCustomFlagModelTable(t *testing.T) {
	file := writeSettings(t, `{"WAFFLE_FLAG_MODEL": "myapp.Flag", "FLAGPROXY_WAFFLE_FLAG_TABLE": "custom_flags"}`)
	c, err := parseConfig("serve", []string{"--database", siteDB(t), "--django-settings", file}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.loader.WaffleFlagModel != "myapp.Flag" || c.loader.WaffleFlagTable != "custom_flags" {
		t.Errorf("loader config: model %q, table %q", c.loader.WaffleFlagModel, c.loader.WaffleFlagTable)
	}
}

func TestSigningKeyFromSettings(t *testing.T) {
	for _, tc := range []struct{ file, flag, want string }{
		{`{"FLAGPROXY_SIGNING_KEY": "k1"}`, "", "k1"},
		{`{"FLAGPROXY_SIGNING_KEY": ["new", "old"]}`, "", "new"},
		{`{"FLAGPROXY_SIGNING_KEY": "k1"}`, "from-flag", "from-flag"},
		{`{}`, "", ""},
	} {
		args := []string{"--database", siteDB(t), "--django-settings", writeSettings(t, tc.file)}
		if tc.flag != "" {
			args = append(args, "--signing-key", tc.flag)
		}
		c, err := parseConfig("serve", args, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.SigningKey != tc.want {
			t.Errorf("%s with --signing-key %q: key %q, want %q", tc.file, tc.flag, c.SigningKey, tc.want)
		}
	}
	for _, bad := range []string{`""`, `[]`, `[""]`, `["a", 1]`, `1`} {
		if _, err := loadDjangoSettings(writeSettings(t, `{"FLAGPROXY_SIGNING_KEY": `+bad+`}`)); err == nil ||
			!strings.Contains(err.Error(), "FLAGPROXY_SIGNING_KEY") {
			t.Errorf("FLAGPROXY_SIGNING_KEY %s: error %v", bad, err)
		}
	}
}

func TestDjangoAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"3.2.25": false, "4.0": false, "4.1": true, "4.2.7": true, "5.0": true, "": true, "x.y": true} {
		if got := djangoAtLeast(v, 4, 1); got != want {
			t.Errorf("djangoAtLeast(%q, 4, 1) = %v", v, got)
		}
	}
}
