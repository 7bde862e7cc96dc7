package djangodb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "site.db")
	if err := os.WriteFile(abs, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	if err := os.WriteFile("rel.db", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSSLMODE", "")
	t.Setenv("PGCONNECT_TIMEOUT", "")

	good := []struct {
		url, dialect, dsnHas, redacted string
	}{
		{"sqlite:///rel.db", "sqlite", "mode=ro", "sqlite:///" + filepath.Join(dir, "rel.db")},
		{"sqlite:///" + abs, "sqlite", "_query_only=1", "sqlite:///" + abs},
		{"postgres://u:secret@db.example:5433/site", "postgres", "sslmode=prefer", "postgres://u:xxxxx@db.example:5433/site?connect_timeout=5&sslmode=prefer"},
		{"postgresql://u@127.0.0.1/site?sslmode=disable", "postgres", "sslmode=disable", "postgres://u@127.0.0.1/site?connect_timeout=5&sslmode=disable"},
		{"pgsql://u@h/site", "postgres", "postgres://u@h/site", "postgres://u@h/site?connect_timeout=5&sslmode=prefer"},
		{"postgres://u@h/site?connect_timeout=30", "postgres", "connect_timeout=30", "postgres://u@h/site?connect_timeout=30&sslmode=prefer"},
		{"postgres:///site?host=/var/run/postgresql", "postgres", "host=%2Fvar%2Frun%2Fpostgresql", ""},
	}
	for _, c := range good {
		got, err := ParseURL(c.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.url, err)
			continue
		}
		if string(got.Dialect) != c.dialect || !strings.Contains(got.DSN, c.dsnHas) {
			t.Errorf("ParseURL(%q) = %+v, want dialect %s and DSN containing %q", c.url, got, c.dialect, c.dsnHas)
		}
		if c.redacted != "" && got.Redacted != c.redacted {
			t.Errorf("ParseURL(%q).Redacted = %q, want %q", c.url, got.Redacted, c.redacted)
		}
		if strings.Contains(got.Redacted, "secret") {
			t.Errorf("Redacted %q shows the password", got.Redacted)
		}
	}

	bad := []struct{ url, says string }{
		{"", "empty"},
		{"db.sqlite3", "no scheme"},
		{"mysql://u@h/db", `unsupported scheme "mysql"`},
		{"sqlite:///missing.db", "does not exist"},
		{"sqlite://", "names no file"},
		{"sqlite://host/x.db", "has a host"},
		{"sqlite:///rel.db?mode=rw", "no query parameters"},
		{"sqlite:///" + dir, "is a directory"},
		{"postgres://u:secret@h", "names no database"},
		{"postgres://u:secret@h:99999/db", "port"},
		{"postgres://u:secret@h:x/db", "invalid port"},
		{"postgres:///db", "has no host"},
	}
	for _, c := range bad {
		_, err := ParseURL(c.url)
		if !errors.Is(err, ErrDatabaseURL) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseURL(%q) error = %v, want ErrDatabaseURL saying %q", c.url, err, c.says)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q) error %q shows the password", c.url, err)
		}
	}
}
