package engine_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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

// TestEvaluateCookieOrder: percentage cookies in flag order, then testing
// cookies, whether the testing cookies fit the room Evaluate makes for
// them or outgrow it, and with either kind alone; room after them for one
// more.
func TestEvaluateCookieOrder(t *testing.T) {
	d := engine.Data{Sources: []engine.Source{engine.SourceWaffle}, Waffle: engine.DefaultData().Waffle}
	for i := range 3 {
		d.WaffleFlags = append(d.WaffleFlags, engine.WaffleFlag{Name: fmt.Sprintf("p%d", i), Percent: engine.PercentOf(500)})
	}
	for i := range 7 {
		d.WaffleFlags = append(d.WaffleFlags, engine.WaffleFlag{Name: fmt.Sprintf("t%d", i), Testing: true})
	}
	snap := mustSnapshot(t, d)
	percent := []string{"dwf_p0", "dwf_p1", "dwf_p2"}
	for _, asked := range []int{0, 1, 4, 7} {
		var raw []string
		want := slices.Clone(percent)
		for i := range asked {
			raw = append(raw, fmt.Sprintf("dwft_t%d=1", i))
			want = append(want, fmt.Sprintf("dwft_t%d", i))
		}
		q := strings.Join(raw, "&")
		r := &engine.Request{Subject: engine.Anonymous, Query: engine.ParseQuery(q), RawQuery: q}
		cs := snap.Evaluate(r, fixedRand(0.1)).Cookies
		var got []string
		for _, c := range cs {
			got = append(got, c.Name)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%d testing parameters: cookies (-want +got):\n%s", asked, diff)
		}
		// Room for the proxy's renewal marker, when they fit Evaluate's.
		if asked <= 4 && cap(cs) == len(cs) {
			t.Errorf("%d testing parameters: no room after the %d cookies", asked, len(cs))
		}
	}
	// Testing cookies alone: the percentage flags are on for everyone.
	for i := range 3 {
		d.WaffleFlags[i].Everyone = engine.Yes
	}
	r := &engine.Request{Subject: engine.Anonymous, Query: engine.ParseQuery("dwft_t6=0")}
	if cs := mustSnapshot(t, d).Evaluate(r, fixedRand(0.1)).Cookies; len(cs) != 1 || cs[0].Name != "dwft_t6" || cs[0].Value != "False" {
		t.Errorf("testing cookie alone: %+v", cs)
	}
}
