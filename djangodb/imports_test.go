package djangodb

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the dependency direction of STYLE.md: djangodb may use
// engine, never the HTTP-facing packages.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/flagproxy/flagproxy/") && imp != "github.com/flagproxy/flagproxy/engine" {
			t.Errorf("djangodb imports %s; it may only import engine from this module", imp)
		}
		if imp == "net/http" {
			t.Errorf("djangodb imports net/http; HTTP belongs in proxy")
		}
	}
}
