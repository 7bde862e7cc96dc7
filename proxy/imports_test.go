package proxy

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the dependency direction of STYLE.md §1: proxy never
// imports the database or the override packages, whose concrete types
// cmd/flagproxy wires into proxy's interfaces.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{
		"github.com/flagproxy/flagproxy/djangodb",
		"github.com/flagproxy/flagproxy/overrides",
		"github.com/flagproxy/flagproxy/cmd",
	}
	imports := append(append(append([]string{}, pkg.Imports...), pkg.TestImports...), pkg.XTestImports...)
	for _, imp := range imports {
		for _, f := range forbidden {
			if imp == f || strings.HasPrefix(imp, f+"/") {
				t.Errorf("proxy imports %s", imp)
			}
		}
	}
}
