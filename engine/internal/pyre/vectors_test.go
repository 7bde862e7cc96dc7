package pyre

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/flagproxy/flagproxy/engine/internal/vectorfile"
)

// vectorFile is the part of django-flags.json this test reads.
type vectorFile struct {
	Cases []vectorCase `json:"cases"`
}

// vectorCase is one flag_enabled call of the django-flags vectors.
type vectorCase struct {
	ID       string `json:"id"`
	Settings struct {
		Flags map[string][]struct {
			Condition *string         `json:"condition"`
			Value     json.RawMessage `json:"value"`
		} `json:"FLAGS"`
		FlagsError  json.RawMessage `json:"FLAGS_ERROR"`
		FlagSources *[]string       `json:"FLAG_SOURCES"`
	} `json:"settings"`
	DBRows []struct {
		Name      string          `json:"name"`
		Condition string          `json:"condition"`
		Value     json.RawMessage `json:"value"`
	} `json:"db_rows"`
	Request  *json.RawMessage `json:"request"`
	Flag     string           `json:"flag"`
	Expected struct {
		Result *bool  `json:"result"`
		Raises string `json:"raises"`
	} `json:"expected"`
	Django struct {
		Path *string `json:"path"`
	} `json:"django"`
}

// vectorsPath finds django-flags.json: see package vectorfile.
func vectorsPath() string {
	p, err := vectorfile.Path("engine/internal/pyre")
	if err != nil {
		return ""
	}
	return p
}

// condition is one condition of a flag: its name and raw JSON value.
type condition struct {
	cond  string
	value json.RawMessage
}

// usesSource reports whether django-flags reads the named source in c.
func usesSource(c vectorCase, source string) bool {
	if c.Settings.FlagSources == nil {
		return true
	}
	return slices.Contains(*c.Settings.FlagSources, "flags.sources."+source)
}

// pathPattern returns the pattern when the case's flag has exactly one
// condition and it is "path matches" with a string value.
func pathPattern(c vectorCase) (string, bool) {
	if len(c.Settings.FlagsError) > 0 {
		return "", false // every flag check raises before any condition runs
	}
	var conds []condition
	settings := c.Settings.Flags
	if !usesSource(c, "SettingsFlagsSource") {
		settings = nil
	}
	for name, list := range settings {
		for _, x := range list {
			if name == c.Flag {
				cond := ""
				if x.Condition != nil {
					cond = *x.Condition
				}
				conds = append(conds, condition{cond, x.Value})
			}
		}
	}
	for _, r := range c.DBRows {
		if r.Name == c.Flag && usesSource(c, "DatabaseFlagsSource") {
			conds = append(conds, condition{r.Condition, r.Value})
		}
	}
	if len(conds) != 1 || conds[0].cond != "path matches" {
		return "", false
	}
	var s string
	v := bytes.TrimSpace(conds[0].value)
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", false // a non-string value raises TypeError, not re.error
	}
	return s, true
}

// TestPathMatchesVectors replays every single-condition "path matches" case
// of the django-flags vectors.
func TestPathMatchesVectors(t *testing.T) {
	path := vectorsPath()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("django-flags.json vectors not found")
		}
		t.Skip("django-flags.json vectors not found")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(data, &vf); err != nil {
		t.Fatal(err)
	}
	checked, unsupportedN := 0, 0
	for _, c := range vf.Cases {
		pattern, ok := pathPattern(c)
		if !ok || c.Request == nil || string(*c.Request) == "null" {
			continue
		}
		checked++
		re, err := Compile(pattern)
		switch {
		case c.Expected.Raises != "":
			if err == nil {
				t.Errorf("%s: Compile(%q) succeeded; Python raises %s", c.ID, pattern, c.Expected.Raises)
			}
		case c.Expected.Result == nil || c.Django.Path == nil:
			t.Errorf("%s: case has neither a result nor a path", c.ID)
		case errors.Is(err, ErrUnsupported):
			unsupportedN++
			t.Logf("%s: unsupported %q: %v", c.ID, pattern, err)
		case err != nil:
			t.Errorf("%s: Compile(%q): %v", c.ID, pattern, err)
		default:
			got, err := re.Search(*c.Django.Path)
			if err != nil || got != *c.Expected.Result {
				t.Errorf("%s: Search(%q, %q) = %v, %v; want %v", c.ID, pattern, *c.Django.Path, got, err, *c.Expected.Result)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no path matches case found in the vectors")
	}
	t.Logf("checked %d path matches vector cases (%d unsupported)", checked, unsupportedN)
	if unsupportedN*20 > checked {
		t.Errorf("%d of %d cases unsupported", unsupportedN, checked)
	}
}
