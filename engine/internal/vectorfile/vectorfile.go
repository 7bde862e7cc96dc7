// Package vectorfile finds the django-flags vector file (spec
// django-flags.md §10.2) for the tests of engine and its helper packages.
package vectorfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// EnvVar names a vector file to use instead of the shared one.
const EnvVar = "FLAGPROXY_DJANGO_FLAGS_VECTORS"

// Path returns the vector file to read: the one EnvVar names, else the
// specification's, checked out beside the repository (as in CI), else the
// copy in engine/testdata. dir is the calling test's package directory
// relative to the repository root ("engine", "engine/internal/pyre").
func Path(dir string) (string, error) {
	if p := os.Getenv(EnvVar); p != "" {
		return p, nil
	}
	root := filepath.Join(".", filepath.FromSlash(upTo(dir)))
	shared := filepath.Join(root, "..", "shared", "spec", "vectors", "django-flags.json")
	if _, err := os.Stat(shared); err == nil {
		return shared, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return filepath.Join(root, "engine", "testdata", "django-flags.json"), nil
}

// upTo returns the relative path from dir back to the repository root.
func upTo(dir string) string {
	up := "."
	for d := filepath.Clean(filepath.FromSlash(dir)); d != "."; d = filepath.Dir(d) {
		up = filepath.Join(up, "..")
	}
	return filepath.ToSlash(up)
}
