package engine_test

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/flagproxy/flagproxy/engine"
)

// TestReasonText: every reason has its own name, which JSON carries and
// reads back; the zero Reason is "", and an unknown name is refused.
func TestReasonText(t *testing.T) {
	seen := map[string]engine.Reason{}
	for r := engine.Reason(1); r.String() != "reason-"+strconv.Itoa(int(r)); r++ {
		name := r.String()
		if name == "" {
			t.Fatalf("reason %d has no name", r)
		}
		if prior, dup := seen[name]; dup {
			t.Fatalf("reasons %d and %d are both %q", prior, r, name)
		}
		seen[name] = r
		b, err := json.Marshal(engine.Decision{On: true, Reason: r})
		if err != nil || string(b) != `{"on":true,"reason":"`+name+`"}` {
			t.Fatalf("reason %d: JSON %s, %v", r, b, err)
		}
		var d engine.Decision
		if err := json.Unmarshal(b, &d); err != nil || d.Reason != r {
			t.Fatalf("reason %d: %s read back as %d, %v", r, b, d.Reason, err)
		}
	}
	if len(seen) != 25 || seen["percent-cookie"] != engine.ReasonPercentCookie || seen["session"] != engine.ReasonOverrideSession {
		t.Errorf("reasons by name: %v", seen)
	}
	if b, _ := json.Marshal(engine.Decision{}); string(b) != `{"on":false,"reason":""}` {
		t.Errorf("zero decision: %s", b)
	}
	var d engine.Decision
	if err := json.Unmarshal([]byte(`{"on":true,"reason":"maybe"}`), &d); err == nil {
		t.Errorf("unknown reason read as %d", d.Reason)
	}
}
