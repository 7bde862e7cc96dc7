//go:build integration

package integration

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestPythonPackage runs the tests of the Django side's package
// (integration/python, Django's own test runner) with Debian's Django. They
// get the flagproxy binary built from this tree, so the file written by
// "manage.py flagproxy_settings" is checked by "flagproxy serve
// --check-config".
func TestPythonPackage(t *testing.T) {
	t.Parallel()
	requireDjango(t)
	// go test caches results by the files the test opens: read the whole
	// package, fixtures and templates included, so any change re-runs it.
	if err := filepath.WalkDir("python", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		_, err = os.ReadFile(path)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "runtests.py", "-v", "2")
	cmd.Dir = "python"
	cmd.Env = append(os.Environ(), "FLAGPROXY_BINARY="+flagproxyBinary(t), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s runtests.py: %v\n%s", python, err, out)
	}
	if m := regexp.MustCompile(`(?m)^Ran \d+ tests?.*$`).Find(out); m != nil {
		t.Log(string(m))
	}
}
