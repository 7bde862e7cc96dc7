package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

func statusGet(t *testing.T, h http.Handler, target string) (*httptest.ResponseRecorder, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec, rec.Body.String()
}

func TestStatusPages(t *testing.T) {
	hs, _ := consoleHarness(t, false)
	for range 3 {
		hs.get(t, "/x", http.Header{"Cookie": {"sessionid=s-plain"}})
	}
	hs.get(t, "/x", nil)
	failing := time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC)
	st, err := NewStatus(StatusConfig{Pipeline: hs.proxy.Pipeline(), Poller: func() PollerState {
		return PollerState{LastSuccess: testNow(), LastError: "read waffle_flag: connection refused", LastErrorAt: failing}
	}})
	if err != nil {
		t.Fatal(err)
	}
	admin := NewAdmin(AdminConfig{Snapshots: hs.store, Status: st})
	rec, body := statusGet(t, admin, "/flags.json")
	var rep statusReport
	if rec.Code != 200 || json.Unmarshal([]byte(body), &rep) != nil {
		t.Fatalf("%d %s", rec.Code, body)
	}
	if rep.Version == "" || rep.State != StateOK || rep.Poller == nil || rep.Poller.LastError == "" || len(rep.Flags) != 3 ||
		len(rep.Switches) != 1 || len(rep.Samples) != 1 {
		t.Fatalf("report: %s", body)
	}
	beta := rep.Flags[0]
	if beta.Name != "beta" || beta.Rule != "staff, groups: beta-testers" || beta.Note != "the new beta, for testers" ||
		beta.Source != engine.SourceWaffle || beta.On != 3 || beta.Off != 1 {
		t.Errorf("beta: %+v", beta)
	}
	if sw := rep.Switches[0]; sw.On != 4 || sw.Off != 0 || sw.Rule != "on" {
		t.Errorf("switch: %+v", sw)
	}
	_, body = statusGet(t, admin, "/flags.json?q=ROLLOUT")
	if json.Unmarshal([]byte(body), &rep) != nil || len(rep.Flags) != 1 || rep.Flags[0].Name != "gradual-rollout" {
		t.Errorf("filtered: %s", body)
	}
	rec, body = statusGet(t, admin, "/flags")
	for _, want := range []string{"staff, groups: beta-testers", "new.checkout v2", "connection refused", "the new beta, for testers"} {
		if !strings.Contains(body, want) {
			t.Errorf("/flags lacks %q", want)
		}
	}
	if rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("content type %q", rec.Header().Get("Content-Type"))
	}
}

func TestExplainEndpoint(t *testing.T) {
	hs, _ := consoleHarness(t, false)
	st, _ := NewStatus(StatusConfig{Pipeline: hs.proxy.Pipeline()})
	rec, body := statusGet(t, st, "/explain?flag=beta&session=s-plain&url=/checkout")
	var a ExplainAnswer
	if rec.Code != 200 || json.Unmarshal([]byte(body), &a) != nil {
		t.Fatalf("%d %s", rec.Code, body)
	}
	var steps []string
	for _, s := range a.Explanation.Steps {
		steps = append(steps, s.Check+": "+s.Outcome)
	}
	want := "everyone: unset|testing: off|staff: user 2 is not staff|groups: in beta-testers → on"
	if got := strings.Join(steps, "|"); got != want || !a.Explanation.Decision.On || a.Visitor.UserID != "2" || a.Version == "" {
		t.Errorf("steps %q\nwant  %q\n%s", got, want, body)
	}
	for target, code := range map[string]int{
		"/explain?flag=nope":                      404,
		"/explain":                                400,
		"/explain?flag=beta&user=1&session=x":     400,
		"/explain?flag=beta&url=https://evil/":    400,
		"/explain?flag=switch:maintenance&url=/a": 200,
		"/explain?flag=sample:trace":              200,
	} {
		if rec, body := statusGet(t, st, target); rec.Code != code {
			t.Errorf("%s: %d %s, want %d", target, rec.Code, body, code)
		}
	}
	var w strings.Builder
	if err := a.WriteText(&w); err != nil || !strings.Contains(w.String(), "groups: in beta-testers → on") {
		t.Errorf("text: %v\n%s", err, w.String())
	}
	// Explanations are not counted as decisions.
	counts, _ := hs.proxy.Pipeline().tally.read()
	if c := counts[nameKey{engine.KindFlag, "beta"}]; c.total != 0 {
		t.Errorf("explain counted decisions: %+v", c)
	}
}

// TestDecisionSeriesAreBounded: the first maxSeries names have a series of
// their own, the rest (and a flag called "other") share "other".
func TestDecisionSeriesAreBounded(t *testing.T) {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceFeatureFlipper}
	for i := range maxSeries + 5 {
		d.Features = append(d.Features, engine.Feature{Name: fmt.Sprintf("f%04d", i), Enabled: i%2 == 0})
	}
	d.Features = append(d.Features, engine.Feature{Name: otherName, Enabled: true})
	snap := mustSnapshot(t, d)
	tl := newTally(testNow)
	for range 2 {
		dec := snap.Evaluate(&engine.Request{}, fixedRand(0))
		tl.add(snap, &dec, nil)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newTallyCollector(tl))
	if n := testutil.CollectAndCount(newTallyCollector(tl)); n != 2*(maxSeries+1) {
		t.Errorf("%d series, want %d", n, 2*(maxSeries+1))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, m := range mfs[0].GetMetric() {
		l := m.GetLabel() // kind, name, state, sorted by name
		got[l[1].GetValue()+"/"+l[2].GetValue()] = m.GetCounter().GetValue()
	}
	for k, want := range map[string]float64{"f0000/on": 2, "f0000/off": 0, "f0001/off": 2, "f0999/on": 0,
		"other/on": 2 * 4, "other/off": 2 * 2} { // f1000-f1004 (on, off, on, off, on) and the flag "other" (on)
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	counts, _ := tl.read()
	if c := counts[nameKey{engine.KindFlag, "f1003"}]; c.on != 0 || c.total != 2 {
		t.Errorf("f1003: %+v", c)
	}
	// A new snapshot keeps the counts since start.
	snap2 := mustSnapshot(t, engine.Data{Sources: d.Sources, Waffle: d.Waffle, Features: d.Features[:3]})
	dec := snap2.Evaluate(&engine.Request{}, fixedRand(0))
	tl.add(snap2, &dec, nil)
	counts, _ = tl.read()
	if c := counts[nameKey{engine.KindFlag, "f0000"}]; c.on != 3 || c.total != 3 {
		t.Errorf("f0000 across snapshots: %+v", c)
	}
}
