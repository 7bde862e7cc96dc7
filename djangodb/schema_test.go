package djangodb

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requireDjango skips the test when Debian's python3-django and
// python3-django-waffle are not installed, except under CI=true, where the
// Django-backed tests must run.
func requireDjango(t *testing.T) {
	t.Helper()
	err := exec.Command("/usr/bin/python3", "-c", "import django, waffle").Run()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but Django is not usable (/usr/bin/python3 -c 'import django, waffle': %v): install python3-django and python3-django-waffle", err)
	}
	t.Skipf("Django not installed (apt-get install python3-django python3-django-waffle): %v", err)
}

// TestSchemaFixturesMatchDjango regenerates testdata/schema from the test
// site's real migrations and fails when the checked-in fixtures drifted.
func TestSchemaFixturesMatchDjango(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Django's migrations; skipped with -short")
	}
	requireDjango(t)
	dsn := postgresDSN(t)
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join("..", "integration", "django", "regen_schema.sh"), out)
	cmd.Env = append(os.Environ(), "FLAGPROXY_TEST_POSTGRES_DSN="+dsn)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("regen_schema.sh: %v\n%s", err, b)
	}
	for _, f := range []string{"sqlite.sql", "postgres.sql"} {
		want, err := os.ReadFile(filepath.Join("testdata", "schema", f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, got) {
			t.Errorf("testdata/schema/%s differs from what Django's migrations produce now; run integration/django/regen_schema.sh and review the diff", f)
		}
	}
}
