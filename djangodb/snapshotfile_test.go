package djangodb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

func persistedData() engine.Data {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle, engine.SourceDjangoFlags}
	d.WaffleFlags = []engine.WaffleFlag{{Name: "pct", Percent: engine.PercentOf(125), Users: []string{"7"}, Everyone: engine.No}}
	d.Switches = []engine.Switch{{Name: "maint", Active: true}}
	d.FlagStates = []engine.FlagState{{Name: "beta", Condition: "path matches", Value: "^/beta", Required: true}}
	d.DjangoFlags.UseTZ, d.DjangoFlags.TimeZone = false, "America/Chicago"
	d.DjangoFlags.Location, _ = time.LoadLocation("America/Chicago")
	return d
}

// TestSnapshotFileRoundTrip: what WriteSnapshotFile writes reads back as a
// snapshot of the same version, with its load time, and nothing else is
// left in the directory.
func TestSnapshotFileRoundTrip(t *testing.T) {
	snap, err := engine.NewSnapshot(persistedData())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "flags.json")
	at := time.Date(2026, 12, 6, 10, 0, 0, 123, time.UTC)
	if err := WriteSnapshotFile(path, snap, at); err != nil {
		t.Fatal(err)
	}
	got, gotAt, err := ReadSnapshotFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version() != snap.Version() || !gotAt.Equal(at) {
		t.Errorf("read back version %s at %v, want %s at %v", got.Version(), gotAt, snap.Version(), at)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the snapshot", len(entries))
	}
	if d, err := (FileLoader{Path: path}).Load(t.Context()); err != nil || len(d.WaffleFlags) != 1 {
		t.Errorf("FileLoader: %v, %v", d.WaffleFlags, err)
	}
}

// TestSnapshotFileRefusesBadFiles: a corrupted, mismatched, foreign or
// truncated file is refused whole.
func TestSnapshotFileRefusesBadFiles(t *testing.T) {
	snap, _ := engine.NewSnapshot(persistedData())
	good := filepath.Join(t.TempDir(), "flags.json")
	if err := WriteSnapshotFile(good, snap, time.Now()); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(good)
	for name, edit := range map[string]func(string) string{
		"data changed":    func(s string) string { return strings.Replace(s, `"maint"`, `"maint2"`, 1) },
		"value changed":   func(s string) string { return strings.Replace(s, `"active":true`, `"active":false`, 1) },
		"version changed": func(s string) string { return strings.Replace(s, snap.Version(), "0000000000000000", 1) },
		"another format":  func(s string) string { return strings.Replace(s, SnapshotFormat, "flagproxy-snapshot/9", 1) },
		"truncated":       func(s string) string { return s[:len(s)/2] },
		"unknown member":  func(s string) string { return strings.Replace(s, `"format"`, `"extra": 1, "format"`, 1) },
		"two values":      func(s string) string { return s + "{}" },
		"bad time zone":   func(s string) string { return strings.Replace(s, "America/Chicago", "Mars/Olympus", 1) },
		"unknown source":  func(s string) string { return strings.Replace(s, `"waffle",`, `"nope",`, 1) },
		"bad percent":     func(s string) string { return strings.Replace(s, `"12.5"`, `"12.55"`, 1) },
		"not json":        func(string) string { return "flags" },
		"empty":           func(string) string { return "" },
		"wrong loaded_at": func(s string) string { return strings.Replace(s, `"loaded_at":"`, `"loaded_at":"x`, 1) },
		"data not an object": func(s string) string {
			i := strings.Index(s, `"data"`)
			return s[:i] + `"data":[]}`
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "flags.json")
			edited := edit(string(raw))
			if edited == string(raw) {
				t.Fatal("the edit changed nothing")
			}
			if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
				t.Fatal(err)
			}
			if s, _, err := ReadSnapshotFile(path); err == nil {
				t.Errorf("read a bad file as version %s", s.Version())
			}
			if _, err := (FileLoader{Path: path}).Load(t.Context()); err == nil {
				t.Error("FileLoader read a bad file")
			}
		})
	}
	if _, _, err := ReadSnapshotFile(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

// TestSnapshotFileByHand: a file written by hand may leave out version,
// loaded_at and sha256; settings it leaves out keep their defaults.
func TestSnapshotFileByHand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.json")
	doc := `{"format": "` + SnapshotFormat + `", "data": {"sources": ["featureflipper"], "features": [{"name": "search", "enabled": true}]}}`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	snap, at, err := ReadSnapshotFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i, ok := snap.FlagIndex("search")
	if !ok || !at.IsZero() || !snap.Evaluate(&engine.Request{}, nil).Flags[i].On {
		t.Errorf("hand-written file: flag known %v, loaded at %v", ok, at)
	}
	if snap.WaffleSettings() != engine.DefaultWaffleSettings() {
		t.Errorf("waffle settings %+v, want the defaults", snap.WaffleSettings())
	}
}
