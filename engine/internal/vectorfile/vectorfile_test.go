package vectorfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestUpTo(t *testing.T) {
	for dir, want := range map[string]string{"engine": "..", "engine/internal/pyre": "../../..", ".": "."} {
		if got := upTo(dir); got != want {
			t.Errorf("upTo(%q) = %q, want %q", dir, got, want)
		}
	}
}

// TestPathFindsAFile: from this package's directory, Path finds the shared
// file or the copy in engine/testdata, and the file exists.
func TestPathFindsAFile(t *testing.T) {
	t.Setenv(EnvVar, "")
	p, err := Path("engine/internal/vectorfile")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("Path() = %s: %v", p, err)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "testdata", "django-flags.json")); err != nil {
		t.Errorf("the copy in engine/testdata is missing: %v", err)
	}
	t.Setenv(EnvVar, "/elsewhere.json")
	if p, _ := Path("engine"); p != "/elsewhere.json" {
		t.Errorf("with %s set, Path() = %s", EnvVar, p)
	}
}
