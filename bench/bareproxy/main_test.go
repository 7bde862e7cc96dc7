package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestPadsAddUpToTheBytesAskedFor(t *testing.T) {
	for _, n := range []int{0, 1, 20, 100, 8019, 8020, 10612, 40000} {
		var total int
		for i, p := range pads(n) {
			if want := fmt.Sprintf("X-Bench-Pad-%d", i+1); p.name != want {
				t.Errorf("pads(%d)[%d] is %s, want %s", n, i, p.name, want)
			}
			v := p.value[0]
			if len(v) < 1 || len(v) > padPartSize || strings.Trim(v, padAlphabet) != "" {
				t.Errorf("pads(%d)[%d]: a value of %d bytes, or not base64url", n, i, len(v))
			}
			total += len(p.name) + len(v) + 4
		}
		// Only the last line's one byte of value can pass n.
		if total < n || total > n+len("X-Bench-Pad-99")+5 {
			t.Errorf("pads(%d) add up to %d bytes", n, total)
		}
	}
}
