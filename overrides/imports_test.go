package overrides

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps STYLE.md's direction: overrides may use engine, never
// proxy or djangodb.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/flagproxy/flagproxy/") && imp != "github.com/flagproxy/flagproxy/engine" {
			t.Errorf("overrides imports %s; it may only import engine from this module", imp)
		}
	}
}
