package engine_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/flagproxy/flagproxy/engine"
)

// localeVectors is testdata/locale.json, written by
// integration/django/locale_vectors.py from Django's own LocaleMiddleware.
type localeVectors struct {
	Django  string `json:"django"`
	Configs []struct {
		Name     string `json:"name"`
		Settings struct {
			UseI18N               bool     `json:"USE_I18N"`
			LanguageCode          string   `json:"LANGUAGE_CODE"`
			Languages             []string `json:"LANGUAGES"`
			CookieName            string   `json:"LANGUAGE_COOKIE_NAME"`
			Available             []string `json:"available"`
			Patterns              bool     `json:"patterns"`
			PrefixDefaultLanguage bool     `json:"prefix_default_language"`
		} `json:"settings"`
		Cases []struct {
			Path     string  `json:"path"`
			Cookie   *string `json:"cookie"`
			Accept   string  `json:"accept"`
			Language string  `json:"language"`
		} `json:"cases"`
	} `json:"configs"`
}

func TestLocaleMatchesDjango(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "locale.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v localeVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, c := range v.Configs {
		t.Run(c.Name, func(t *testing.T) {
			s := c.Settings
			l := engine.NewLocale(engine.LocaleSettings{
				I18N: s.UseI18N, LanguageCode: s.LanguageCode, Languages: s.Languages, Available: s.Available,
				CookieName: s.CookieName, Patterns: s.Patterns, PrefixDefaultLanguage: s.PrefixDefaultLanguage,
			})
			for _, tc := range c.Cases {
				var cookies engine.Params
				if tc.Cookie != nil {
					cookies = engine.Params{s.CookieName: *tc.Cookie}
				}
				// The vectors hold the header as Python's Latin-1 text;
				// the proxy sees its bytes.
				accept := latin1Bytes(t, tc.Accept)
				if got := l.Language(tc.Path, cookies, accept); got != tc.Language {
					t.Errorf("path %q, cookie %s, Accept-Language %q: got %q, Django %s set %q",
						tc.Path, quoteOrNone(tc.Cookie), tc.Accept, got, v.Django, tc.Language)
				}
				total++
			}
		})
	}
	if total < 4000 {
		t.Errorf("only %d cases in testdata/locale.json", total)
	}
}

func latin1Bytes(t *testing.T, s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			t.Fatalf("Accept-Language %q is not Latin-1", s)
		}
		b = append(b, byte(r))
	}
	return string(b)
}

func quoteOrNone(s *string) string {
	if s == nil {
		return "none"
	}
	b, _ := json.Marshal(*s)
	return string(b)
}

func BenchmarkLocale(b *testing.B) {
	l := engine.NewLocale(engine.LocaleSettings{I18N: true, LanguageCode: "en-us",
		Languages: []string{"en", "en-us", "fr", "fr-ca", "de", "pt-br", "zh-hans"}, CookieName: "django_language"})
	cookies := engine.Params{"sessionid": "x"}
	b.ReportAllocs()
	for b.Loop() {
		if l.Language("/page/", cookies, "fr-CA,fr;q=0.9,en-US;q=0.8,en;q=0.7") != "fr-ca" {
			b.Fatal("wrong language")
		}
	}
}

// TestThreePartPrefixes checks Django 4.1's URL prefixes with a script and
// a region, which earlier versions do not read as a language.
func TestThreePartPrefixes(t *testing.T) {
	s := engine.LocaleSettings{I18N: true, LanguageCode: "en", Languages: []string{"en", "zh-hant"},
		CookieName: "django_language", Patterns: true, PrefixDefaultLanguage: true}
	if got := engine.NewLocale(s).Language("/zh-hant-tw/page/", nil, ""); got != "en" {
		t.Errorf("before 4.1: %q, want the default en", got)
	}
	s.ThreePartPrefixes = true
	for path, want := range map[string]string{"/zh-hant-tw/page/": "zh-hant", "/zh-hant/": "zh-hant", "/zh-hant-tw-x/": "en"} {
		if got := engine.NewLocale(s).Language(path, nil, ""); got != want {
			t.Errorf("4.1, %s: %q, want %q", path, got, want)
		}
	}
}
