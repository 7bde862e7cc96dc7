package pyre

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// differentialCase is one record written by testdata/gen_random.py.
type differentialCase struct {
	Pattern string   `json:"p"`
	Inputs  []string `json:"in"`
	Results []bool   `json:"res"`
	Err     *string  `json:"err"`
}

// TestDifferential compares Compile and Search with Python on a file of
// random patterns made by testdata/gen_random.py. It runs only when
// PYRE_DIFF names such a file, since the data is large and made by Python.
func TestDifferential(t *testing.T) {
	path := os.Getenv("PYRE_DIFF")
	if path == "" {
		t.Skip("PYRE_DIFF is not set")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []differentialCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	compiled, unsupportedN := 0, 0
	for _, c := range cases {
		re, err := Compile(c.Pattern)
		switch {
		case c.Err != nil:
			if err == nil {
				t.Errorf("Compile(%q) succeeded; Python: %s", c.Pattern, *c.Err)
			}
			continue
		case errors.Is(err, ErrUnsupported):
			unsupportedN++
			continue
		case err != nil:
			t.Errorf("Compile(%q): %v", c.Pattern, err)
			continue
		}
		compiled++
		for i, s := range c.Inputs {
			if got, err := re.Search(s); err != nil || got != c.Results[i] {
				t.Errorf("Search(%q, %q) = %v, %v; Python says %v", c.Pattern, s, got, err, c.Results[i])
			}
		}
	}
	t.Logf("%d patterns: %d compiled, %d unsupported, the rest rejected by Python", len(cases), compiled, unsupportedN)
}
