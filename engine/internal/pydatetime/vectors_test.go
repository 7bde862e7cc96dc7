package pydatetime

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/flagproxy/flagproxy/engine/internal/vectorfile"
	"time"
)

// vectorFile is the part of shared/spec/vectors/django-flags.json this
// package needs.
type vectorFile struct {
	Cases []vectorCase `json:"cases"`
}

// vectorCase is one flag_enabled call of the vector file.
type vectorCase struct {
	ID       string `json:"id"`
	Settings struct {
		UseTZ       bool                       `json:"USE_TZ"`
		TimeZone    string                     `json:"TIME_ZONE"`
		Flags       map[string][]vectorCond    `json:"FLAGS"`
		FlagsError  json.RawMessage            `json:"FLAGS_ERROR"`
		FlagSources []string                   `json:"FLAG_SOURCES"`
		Extra       map[string]json.RawMessage `json:"-"`
	} `json:"settings"`
	DBRows []vectorCond `json:"db_rows"`
	Now    struct {
		UTC    string `json:"utc"`
		Django string `json:"django"`
	} `json:"now"`
	Flag     string `json:"flag"`
	Expected struct {
		Result  *bool  `json:"result"`
		Raises  string `json:"raises"`
		Message string `json:"message"`
	} `json:"expected"`
}

// vectorCond is a condition from the settings or a DB row.
type vectorCond struct {
	Name      string          `json:"name"`
	Condition *string         `json:"condition"`
	Value     json.RawMessage `json:"value"`
}

// loadVectors reads the django-flags vector file, or skips the test when
// it is absent (failing instead when CI=true).
func loadVectors(t *testing.T) []vectorCase {
	t.Helper()
	path, err := vectorfile.Path("engine/internal/pydatetime")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && os.Getenv("CI") != "true" {
		t.Skipf("no vector file at %s", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f.Cases
}

// dateCondition returns the flag's only condition when it is "after date"
// or "before date", following FLAG_SOURCES (default: settings, then DB).
func (c *vectorCase) dateCondition() (vectorCond, bool) {
	sources := c.Settings.FlagSources
	if sources == nil {
		sources = []string{"flags.sources.SettingsFlagsSource", "flags.sources.DatabaseFlagsSource"}
	}
	var conds []vectorCond
	for _, src := range sources {
		switch src {
		case "flags.sources.SettingsFlagsSource":
			if c.Settings.FlagsError != nil {
				return vectorCond{}, false // every check raises
			}
			conds = append(conds, c.Settings.Flags[c.Flag]...)
		case "flags.sources.DatabaseFlagsSource":
			for _, r := range c.DBRows {
				if r.Name == c.Flag {
					conds = append(conds, r)
				}
			}
		}
	}
	if len(conds) != 1 || conds[0].Condition == nil {
		return vectorCond{}, false
	}
	name := *conds[0].Condition
	return conds[0], name == "after date" || name == "before date"
}

// now returns the case's timezone.now() and checks it against the
// recorded value.
func (c *vectorCase) now(t *testing.T) Value {
	t.Helper()
	instant, err := time.Parse(time.RFC3339Nano, c.Now.UTC)
	if err != nil {
		t.Fatalf("%s: now.utc: %v", c.ID, err)
	}
	loc, err := time.LoadLocation(c.Settings.TimeZone)
	if err != nil {
		t.Fatalf("%s: TIME_ZONE: %v", c.ID, err)
	}
	now := Now(instant, c.Settings.UseTZ, loc)
	if recorded, err := FromISO(c.Now.Django); err != nil || encode(recorded, nil) != encode(now, nil) {
		t.Errorf("%s: Now = %v, Django recorded %q (%v)", c.ID, now, c.Now.Django, err)
	}
	return now
}

// condValue parses a condition value the way django-flags does on Django
// 3.2: strings with parse_datetime, {"$datetime": ...} as that datetime,
// anything else as a value no datetime compares with.
func condValue(raw json.RawMessage) (Value, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return Parse(s, 3, 2)
	}
	var tagged struct {
		Datetime *string `json:"$datetime"`
	}
	if json.Unmarshal(raw, &tagged) == nil && tagged.Datetime != nil {
		return FromISO(*tagged.Datetime)
	}
	return Value{}, nil
}

// TestDatesVectors replays the vector cases whose flag has a single date
// condition, with Django 3.2 rules, and prints how many it checked.
func TestDatesVectors(t *testing.T) {
	checked, byKind := 0, map[string]int{}
	for _, c := range loadVectors(t) {
		cond, ok := c.dateCondition()
		if !ok {
			continue
		}
		checked++
		byKind[valueKind(cond.Value)]++
		checkVector(t, &c, cond)
	}
	t.Logf("checked %d vector cases, by value: %v", checked, byKind)
	if checked == 0 {
		t.Fatal("no date vector cases found")
	}
}

// checkVector evaluates one single-condition date case.
func checkVector(t *testing.T, c *vectorCase, cond vectorCond) {
	t.Helper()
	now := c.now(t)
	v, err := condValue(cond.Value)
	if c.Expected.Raises != "" {
		var ve *ValueError
		if c.Expected.Raises != "ValueError" || !errors.As(err, &ve) || ve.Message != c.Expected.Message {
			t.Errorf("%s: %s: got %v, %v; want %s(%q)", c.ID, cond.Value, v, err, c.Expected.Raises, c.Expected.Message)
		}
		return
	}
	if err != nil || c.Expected.Result == nil {
		t.Errorf("%s: %s: got error %v, want result %v", c.ID, cond.Value, err, c.Expected.Result)
		return
	}
	got := Before(v, now)
	if *cond.Condition == "after date" {
		got = After(v, now)
	}
	if got != *c.Expected.Result {
		t.Errorf("%s: %s %s at %v: got %v (value %v), want %v",
			c.ID, *cond.Condition, cond.Value, now, got, v, *c.Expected.Result)
	}
}

// valueKind names the JSON type of a condition value for the summary.
func valueKind(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		var tagged map[string]json.RawMessage
		_ = json.Unmarshal(raw, &tagged)
		for k := range tagged {
			if k != "truthy" {
				return k
			}
		}
	}
	return "other"
}
