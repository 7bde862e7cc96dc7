package proxy

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// historyData is a small snapshot's rows: a waffle flag and a switch.
func historyData(everyone engine.Tristate, switchOn bool, log ...engine.AdminEntry) engine.Data {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle}
	d.WaffleFlags = []engine.WaffleFlag{{Name: "checkout", Everyone: everyone}}
	d.Switches = []engine.Switch{{Name: "maintenance", Active: switchOn}}
	d.AdminLog = log
	return d
}

func newTestHistory(t *testing.T, cfg HistoryConfig) (*History, *engine.Store, *bytes.Buffer, *prometheus.Registry) {
	t.Helper()
	var store engine.Store
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	cfg.Next, cfg.Logger, cfg.Registerer = &store, slog.New(slog.NewJSONHandler(&logs, nil)), reg
	h, err := NewHistory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, &store, &logs, reg
}

// TestHistory checks the life of a change: the first snapshot is no
// change; a later one with an admin log entry for its flag is attributed
// to that user, its switch change (no entry) to "unknown"; each is one
// log line and one count; the snapshot reaches the next publisher; the
// same snapshot published again changes nothing.
func TestHistory(t *testing.T) {
	h, store, logs, reg := newTestHistory(t, HistoryConfig{})
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	h.Publish(mustSnapshot(t, historyData(engine.Unset, false)), t0)
	if logs.Len() != 0 || len(h.History("checkout")) != 0 {
		t.Fatalf("the first snapshot made changes: %s", logs)
	}
	admin := time.Date(2026, 5, 1, 9, 0, 3, 0, time.UTC)
	entry := engine.AdminEntry{ID: 7, Time: admin, UserID: "4", Username: "alice", Kind: engine.KindFlag, Source: engine.SourceWaffle,
		Name: "checkout", Action: engine.AdminChange, Message: `[{"changed": {"fields": ["Everyone"]}}]`}
	next := mustSnapshot(t, historyData(engine.Yes, true, entry))
	t1 := t0.Add(5 * time.Second)
	h.Publish(next, t1)
	h.Publish(next, t1.Add(time.Second))
	if store.Load() != next {
		t.Error("the snapshot did not reach the next publisher")
	}
	want := []ChangeRecord{{Change: engine.Change{Kind: engine.KindFlag, Source: engine.SourceWaffle, Name: "checkout", Op: engine.OpChanged,
		Field: "everyone", Old: "NULL", New: "true"}, SeenAt: t1, Version: next.Version(), By: "alice", UserID: "4", ChangedAt: admin,
		AdminMessage: entry.Message}}
	if d := cmp.Diff(want, h.History("checkout")); d != "" {
		t.Errorf("checkout history (-want +got):\n%s", d)
	}
	sw := h.History("maintenance")
	if len(sw) != 1 || sw[0].By != Unknown || sw[0].UserID != "" || sw[0].Field != "active" || sw[0].New != "true" {
		t.Errorf("maintenance history: %+v", sw)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one log line per change, got:\n%s", logs)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"msg": "flag changed", "kind": "flag", "source": "waffle", "flag": "checkout", "op": "changed",
		"field": "everyone", "old": "NULL", "new": "true", "by": "alice", "user_id": "4", "changed_at": "2026-05-01T09:00:03Z",
		"snapshot_version": next.Version()} {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
	if strings.Contains(lines[1], "changed_at") {
		t.Errorf("an unknown author's change has an admin time: %s", lines[1])
	}
	expected := `# HELP flagproxy_flag_changes_total Changes seen between consecutive snapshots (one per added or removed name and per changed field), by kind, source and author (admin: a django_admin_log entry accounts for it; unknown).
# TYPE flagproxy_flag_changes_total counter
flagproxy_flag_changes_total{author="admin",kind="flag",source="waffle"} 1
flagproxy_flag_changes_total{author="unknown",kind="switch",source="waffle"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "flagproxy_flag_changes_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestHistoryRestore checks that a snapshot restored from a file is what
// the first load is compared with, and that without one the first load
// is no change.
func TestHistoryRestore(t *testing.T) {
	h, _, _, _ := newTestHistory(t, HistoryConfig{})
	h.Restore(mustSnapshot(t, historyData(engine.No, false)))
	h.Publish(mustSnapshot(t, historyData(engine.Yes, false)), time.Now())
	if got := h.History("checkout"); len(got) != 1 || got[0].Old != "false" || got[0].New != "true" || got[0].By != Unknown {
		t.Errorf("history after a restored snapshot: %+v", got)
	}
	h.Restore(mustSnapshot(t, historyData(engine.No, false)))
	h.Publish(mustSnapshot(t, historyData(engine.Yes, false)), time.Now())
	if got := h.History("checkout"); len(got) != 1 {
		t.Errorf("a late Restore replaced the last snapshot: %+v", got)
	}
}

// TestHistoryBound checks both bounds: the newest PerName changes of a
// name are kept, and past Names names the one changed least recently is
// dropped.
func TestHistoryBound(t *testing.T) {
	h, _, _, _ := newTestHistory(t, HistoryConfig{PerName: 3, Names: 2})
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	publish := func(i int, switches map[string]bool) {
		d := engine.DefaultData()
		d.Sources = []engine.Source{engine.SourceWaffle}
		for name, on := range switches {
			d.Switches = append(d.Switches, engine.Switch{Name: name, Active: on})
		}
		h.Publish(mustSnapshot(t, d), t0.Add(time.Duration(i)*time.Second))
	}
	for i := range 6 {
		publish(i, map[string]bool{"a": i%2 == 1})
	}
	got := h.History("a")
	if len(got) != 3 || !got[0].SeenAt.Equal(t0.Add(5*time.Second)) || !got[2].SeenAt.Equal(t0.Add(3*time.Second)) {
		t.Errorf("history of a: %+v", got)
	}
	publish(6, map[string]bool{"a": true, "b": false})            // b is added
	publish(7, map[string]bool{"a": true, "b": true, "c": false}) // b flips, c is added: a changed least recently
	if len(h.History("b")) != 2 || len(h.History("c")) != 1 || len(h.History("a")) != 0 {
		t.Errorf("after a third name: a %d, b %d, c %d changes; want a dropped", len(h.History("a")), len(h.History("b")), len(h.History("c")))
	}
}

// TestHistoryEndpoint checks /flags/{name}/history.json on the admin
// listener, and the history on /flags.json and /flags.
func TestHistoryEndpoint(t *testing.T) {
	hs, _ := consoleHarness(t, false)
	h, err := NewHistory(HistoryConfig{Next: hs.store})
	if err != nil {
		t.Fatal(err)
	}
	h.Restore(hs.store.Load())
	d := consoleData()
	for i := range d.WaffleFlags {
		if d.WaffleFlags[i].Name == "beta" {
			d.WaffleFlags[i].Staff = false
		}
	}
	d.Switches = append(d.Switches, engine.Switch{Name: "beta", Active: true})
	d.AdminLog = []engine.AdminEntry{{ID: 1, UserID: "9", Username: "carol", Kind: engine.KindFlag, Source: engine.SourceWaffle, Name: "beta", Action: engine.AdminChange}}
	h.Publish(mustSnapshot(t, d), testNow())
	st, err := NewStatus(StatusConfig{Pipeline: hs.proxy.Pipeline(), History: h})
	if err != nil {
		t.Fatal(err)
	}
	admin := NewAdmin(AdminConfig{Snapshots: hs.store, Status: st})

	var rep historyReport
	rec, body := statusGet(t, admin, "/flags/beta/history.json")
	if rec.Code != 200 || json.Unmarshal([]byte(body), &rep) != nil || rep.Name != "beta" || len(rep.Changes) != 2 {
		t.Fatalf("%d %s", rec.Code, body)
	}
	rec, body = statusGet(t, admin, "/flags/beta/history.json?kind=flag")
	if json.Unmarshal([]byte(body), &rep) != nil || len(rep.Changes) != 1 || rep.Changes[0].By != "carol" || rep.Changes[0].Field != "staff" {
		t.Errorf("kind=flag: %d %s", rec.Code, body)
	}
	if !strings.Contains(body, `"kind":"flag","source":"waffle","name":"beta","op":"changed","field":"staff","old":"true","new":"false"`) {
		t.Errorf("the JSON shape changed: %s", body)
	}
	for target, code := range map[string]int{
		"/flags/nope/history.json":                                      404,
		"/flags/beta/history.json?kind=sample":                          404,
		"/flags/beta/history.json?kind=bogus":                           400,
		"/flags/" + url.PathEscape("new.checkout v2") + "/history.json": 200, // known, unchanged
		"/flags/a%2Fb/history.json":                                     404,
	} {
		if rec, body := statusGet(t, admin, target); rec.Code != code {
			t.Errorf("%s: %d, want %d: %s", target, rec.Code, code, body)
		}
	}
	if rec, _ := statusGet(t, admin, "/flags/new.checkout%20v2/history.json"); !strings.Contains(rec.Body.String(), `"changes":[]`) {
		t.Errorf("an unchanged flag's history: %s", rec.Body)
	}

	_, body = statusGet(t, admin, "/flags.json?q=beta")
	var status statusReport
	if err := json.Unmarshal([]byte(body), &status); err != nil || len(status.Flags) != 1 || len(status.Flags[0].History) != 1 ||
		len(status.Switches) != 1 || len(status.Switches[0].History) != 1 || status.Switches[0].History[0].By != Unknown {
		t.Errorf("/flags.json history: %s", body)
	}
	_, page := statusGet(t, admin, "/flags")
	for _, want := range []string{"staff <code>true</code> → <code>false</code>", "by <b>carol</b>", "by <b>unknown</b>",
		`href="/flags/beta/history.json?kind=flag"`, `href="/flags/beta/history.json?kind=switch"`} {
		if !strings.Contains(page, want) {
			t.Errorf("/flags lacks %q", want)
		}
	}
}
