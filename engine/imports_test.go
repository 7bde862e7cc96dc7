package engine_test

import (
	"go/build"
	"slices"
	"strings"
	"testing"
)

// bannedImports are standard-library packages that do I/O, log or draw
// random numbers; engine must stay pure (STYLE.md §1, §5 item 6). "x/..."
// bans x and every package below it; net alone is banned exactly, so the
// pure net/url and net/netip stay allowed.
var bannedImports = []string{
	"database/sql/...",
	"log/...",
	"math/rand/...",
	"net",
	"net/http/...",
	"os/...",
}

// isBanned reports the entry of bannedImports that path matches.
func isBanned(path string) (string, bool) {
	for _, b := range bannedImports {
		if tree, ok := strings.CutSuffix(b, "/..."); ok {
			if path == tree || strings.HasPrefix(path, tree+"/") {
				return b, true
			}
		} else if path == b {
			return b, true
		}
	}
	return "", false
}

// internalPrefix is where engine's own pure helper packages live; they are
// held to the same rules.
const internalPrefix = "github.com/flagproxy/flagproxy/engine/internal/"

// pureLibraries are the only packages outside the standard library that
// engine's packages may import: computation only, no I/O.
var pureLibraries = []string{
	"github.com/dlclark/regexp2",          // Python-compatible backtracking regexps (internal/pyre)
	"golang.org/x/text/unicode/runenames", // character names for \N{...} (internal/pyre)
}

func TestImports(t *testing.T) {
	for _, dir := range []string{".", "internal/pyre", "internal/pydatetime"} {
		t.Run(dir, func(t *testing.T) { checkImports(t, dir) })
	}
}

func checkImports(t *testing.T, dir string) {
	pkg, err := build.ImportDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.Imports) == 0 {
		t.Fatal("the package imports nothing: the test is looking at the wrong directory")
	}
	for _, path := range pkg.Imports {
		if strings.HasPrefix(path, internalPrefix) {
			continue
		}
		if pure := strings.TrimSuffix(path, "/syntax"); slices.Contains(pureLibraries, pure) {
			continue
		}
		first, _, _ := strings.Cut(path, "/")
		if strings.Contains(first, ".") {
			t.Errorf("%s imports %q: only the standard library, engine/internal and %q are allowed", dir, path, pureLibraries)
			continue
		}
		if b, ok := isBanned(path); ok {
			t.Errorf("%s imports %q: it must do no I/O, logging or randomness of its own (banned: %s)", dir, path, b)
		}
		std, err := build.Import(path, "", build.FindOnly)
		if err != nil {
			t.Errorf("import %q: %v", path, err)
			continue
		}
		if !std.Goroot {
			t.Errorf("%s imports %q, which is not in GOROOT", dir, path)
		}
	}
}

// TestBannedImportsMatch keeps the rule of TestImports honest: it must catch
// the packages the brief names, and let pure ones such as net/url through.
func TestBannedImportsMatch(t *testing.T) {
	for _, p := range []string{"net", "net/http", "net/http/httputil", "database/sql", "database/sql/driver", "os", "os/exec", "log", "log/slog", "math/rand", "math/rand/v2"} {
		if _, ok := isBanned(p); !ok {
			t.Errorf("%s is not banned", p)
		}
	}
	for _, p := range []string{"net/url", "net/netip", "math", "math/bits", "time", "crypto/sha256", "sync/atomic", "strings"} {
		if b, ok := isBanned(p); ok {
			t.Errorf("%s is banned by %s", p, b)
		}
	}
}
