package engine_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flagproxy/flagproxy/engine"
	"github.com/flagproxy/flagproxy/engine/internal/vectorfile"
)

type flagsVectors struct {
	Cases []flagsCase `json:"cases"`
}

type flagsCase struct {
	ID       string             `json:"id"`
	Settings json.RawMessage    `json:"settings"`
	DBRows   []engine.FlagState `json:"db_rows"`
	Request  *struct {
		Path        string `json:"path"`
		QueryString string `json:"query_string"`
		User        *struct {
			PK       json.RawMessage `json:"pk"`
			Username string          `json:"username"`
		} `json:"user"`
	} `json:"request"`
	Now struct {
		UTC string `json:"utc"`
	} `json:"now"`
	Flag     string `json:"flag"`
	Expected struct {
		Result *bool  `json:"result"`
		Raises string `json:"raises"`
	} `json:"expected"`
	Django struct {
		Path string `json:"path"`
	} `json:"django"`
}

// loadFlagsVectors reads the vector file of django-flags, made with the real
// library (spec django-flags.md §10.2): see package vectorfile for which.
func loadFlagsVectors(t *testing.T) (string, flagsVectors) {
	t.Helper()
	path, err := vectorfile.Path("engine")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("django-flags vectors: %v", err)
	}
	var v flagsVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("django-flags vectors %s: %v", path, err)
	}
	if len(v.Cases) == 0 {
		t.Fatalf("django-flags vectors %s hold no cases", path)
	}
	return path, v
}

// TestDjangoFlagsVectors replays every case of the django-flags vector file
// through the engine: the settings and rows as the settings file and the
// loader deliver them, the request as the proxy builds it, Django 3.2's
// rules. Where the library raises, the flag must be off with ReasonError
// (fail closed); an unknown flag must be absent.
func TestDjangoFlagsVectors(t *testing.T) {
	path, v := loadFlagsVectors(t)
	var ran, skipped int
	for _, c := range v.Cases {
		if c.Request == nil {
			skipped++ // called without a request: a proxy always has one
			continue
		}
		ran++
		t.Run(c.ID, func(t *testing.T) { runFlagsCase(t, c) })
	}
	t.Logf("%d cases from %s (%d without a request skipped)", ran, path, skipped)
}

func runFlagsCase(t *testing.T, c flagsCase) {
	settings := engine.DefaultDjangoFlagsSettings()
	if err := json.Unmarshal(c.Settings, &settings); err != nil {
		t.Fatalf("settings: %v", err)
	}
	settings.DjangoVersion = "3.2"
	loc, err := time.LoadLocation(settings.TimeZone)
	if err != nil {
		t.Fatal(err)
	}
	settings.Location = loc
	data := engine.DefaultData()
	data.Sources = []engine.Source{engine.SourceDjangoFlags}
	data.FlagStates, data.DjangoFlags = c.DBRows, settings
	snap, err := engine.NewSnapshot(data)
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	req := flagsRequest(t, c)
	d := snap.Evaluate(req, nil)
	i, known := snap.FlagIndex(c.Flag)
	switch {
	case c.Expected.Raises != "" && !known && settings.FlagsError != nil:
		// FLAGS could not be read, so its names are not known to the
		// settings file: the name is absent and the Python side answers
		// None, falsy, as the raising check fails the page.
	case c.Expected.Raises != "":
		if !known || d.Flags[i] != (engine.Decision{Reason: engine.ReasonError}) {
			t.Errorf("flag %q: Django raises %s; want off (error), got known=%v %+v", c.Flag, c.Expected.Raises, known, decisionAt(d, i, known))
		}
	case c.Expected.Result == nil:
		if known {
			t.Errorf("flag %q: unknown to django-flags, but the snapshot knows it: %+v", c.Flag, d.Flags[i])
		}
	case !known:
		t.Errorf("flag %q: want %v, the snapshot does not know it", c.Flag, *c.Expected.Result)
	case d.Flags[i].On != *c.Expected.Result || d.Flags[i].Reason == engine.ReasonError:
		t.Errorf("flag %q: want %v, got %+v (problems %+v)", c.Flag, *c.Expected.Result, d.Flags[i], snap.Problems())
	}
}

func decisionAt(d engine.Decisions, i int, ok bool) any {
	if !ok {
		return "absent"
	}
	return d.Flags[i]
}

// flagsRequest builds the request of a case as the proxy would, and checks
// that the path comes out as Django's request.path.
func flagsRequest(t *testing.T, c flagsCase) *engine.Request {
	t.Helper()
	now, err := time.Parse("2006-01-02T15:04:05.999999Z", c.Now.UTC)
	if err != nil {
		t.Fatalf("now: %v", err)
	}
	rq := c.Request
	req := &engine.Request{
		Subject:  engine.Anonymous,
		Path:     engine.DjangoPath(rq.Path),
		RawQuery: rq.QueryString,
		Query:    engine.ParseQuery(rq.QueryString),
		Now:      now,
	}
	if req.Path != c.Django.Path {
		t.Errorf("DjangoPath(%q) = %q, Django's request.path is %q", rq.Path, req.Path, c.Django.Path)
	}
	if u := rq.User; u != nil {
		req.Subject = engine.Subject{UserID: strings.Trim(string(u.PK), `"`), Username: u.Username, Authenticated: true, Active: true}
	}
	return req
}
