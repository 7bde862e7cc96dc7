package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := "Running 4s test @ http://127.0.0.1:1/\n  1 threads and 64 connections\n" +
		"BENCH requests=81234 duration_us=4001234 p50_us=2810 p99_us=9100 errors=3\n"
	got, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := loadResult{Requests: 81234, Duration: 4001234 * time.Microsecond, P50: 2810 * time.Microsecond, P99: 9100 * time.Microsecond, Errors: 3}
	if got != want {
		t.Errorf("parseWrk = %+v, want %+v", got, want)
	}
	if _, err := parseWrk("no summary"); err == nil {
		t.Error("parseWrk accepted output without a summary")
	}
}

func TestSpreadAndFormat(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want string
	}{
		{[]float64{3, 1, 2}, "2 (1–3)"},
		{[]float64{4, 1, 2, 3}, "2 (1–4)"}, // 2.5 rendered without decimals
		{[]float64{7}, "7"},
		{nil, "–"},
	} {
		if got := spreadOf(c.in).format(fixed(0)); got != c.want {
			t.Errorf("spreadOf(%v) = %q, want %q", c.in, got, c.want)
		}
	}
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestMarkdownBarePlusHeader checks that bare+header is explained, named
// with the scenario's header bytes in both tables, in the order of
// -servers, and given ratios to the bare proxy.
func TestMarkdownBarePlusHeader(t *testing.T) {
	var e env
	servers, err := e.pickServers("flagproxy,bare,bare+header")
	if err != nil {
		t.Fatal(err)
	}
	scenarios, err := pickScenarios("b", 10)
	if err != nil {
		t.Fatal(err)
	}
	r := &report{o: options{rounds: 1, duration: time.Second, rate: 500, rateFor: time.Second, db: "sqlite"},
		scenarios: scenarios, servers: servers, headerBytes: map[string]int64{"b": 10612},
		results: map[cellKey][]measurement{}}
	for srv, rps := range map[string]int64{"flagproxy": 4000, "bare": 10000, "bare+header": 5000} {
		r.results[cellKey{"b", srv}] = []measurement{{sat: loadResult{Requests: rps, Duration: time.Second}}}
	}
	md := r.markdown()
	if !strings.Contains(md, "the cost of carrying the decisions, without deciding them") {
		t.Error("the preamble does not explain bare+header")
	}
	title := "bare ReverseProxy + flagproxy's header bytes (10,612 B)"
	flagproxy, bare := "| (b) 1,000 flags, 1 returning session | flagproxy |", "| bare ReverseProxy |"
	withHeader := "| (b) 1,000 flags, 1 returning session | " + title + " | 5,000 |"
	if i, j, k := strings.Index(md, flagproxy), strings.Index(md, bare), strings.Index(md, withHeader); i < 0 || j < i || k < j {
		t.Errorf("want the rows flagproxy, bare, bare+header in that order:\n%s", md)
	}
	if !strings.Contains(md, "| (b) | "+title+" | ×0.50 |") {
		t.Errorf("no ratio row for bare+header:\n%s", md)
	}
	if _, err := e.pickServers("flagproxy,bare+header"); err == nil {
		t.Error("pickServers accepted bare+header without bare")
	}
}

// TestMarkdownRotation: the report pairs scenario c's throughput with
// scenario a's round by round.
func TestMarkdownRotation(t *testing.T) {
	var e env
	servers, err := e.pickServers("flagproxy,bare")
	if err != nil {
		t.Fatal(err)
	}
	scenarios, err := pickScenarios("a,c", 10)
	if err != nil {
		t.Fatal(err)
	}
	r := &report{o: options{rounds: 2, duration: time.Second, rate: 500, rateFor: time.Second, db: "sqlite"},
		scenarios: scenarios, servers: servers, results: map[cellKey][]measurement{}}
	for _, c := range []struct {
		scenario, server string
		rps              [2]int64
	}{{"a", "flagproxy", [2]int64{10000, 5000}}, {"c", "flagproxy", [2]int64{9000, 6000}},
		{"a", "bare", [2]int64{12000, 12000}}, {"c", "bare", [2]int64{12000, 12000}}} {
		for round, n := range c.rps {
			k := cellKey{c.scenario, c.server}
			r.results[k] = append(r.results[k], measurement{round: round, sat: loadResult{Requests: n, Duration: time.Second}})
		}
	}
	want := "(c) against its req/s in (a) in the same round: ×1.05 (×0.90–×1.20)"
	if md := r.markdown(); !strings.Contains(md, want) {
		t.Errorf("want %q in:\n%s", want, md)
	}
	// With the measurements around (c)'s, their mean is the reference.
	for round, pair := range [][2]int64{{10000, 8000}, {5000, 7000}} {
		for _, n := range pair {
			r.refs = append(r.refs, measurement{round: round, sat: loadResult{Requests: n, Duration: time.Second}})
		}
	}
	md := r.markdown()
	for _, want := range []string{
		"(c) against the mean of its req/s with (a)'s traffic measured right before and right after, on the same site: ×1.00 (the goal",
		"(c) against its req/s in (a) in the same round: ×1.05 (×0.90–×1.20) (measured further apart",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("want %q in:\n%s", want, md)
		}
	}
}

// TestRatiosToMeanOfBare checks that a round's ratio is to the mean of the
// bare proxy's measurements of that round, not one ratio to each.
func TestRatiosToMeanOfBare(t *testing.T) {
	r := &report{results: map[cellKey][]measurement{}}
	add := func(srv string, round int, rps int64) {
		k := cellKey{"a", srv}
		r.results[k] = append(r.results[k], measurement{round: round, sat: loadResult{Requests: rps, Duration: time.Second}})
	}
	add("bare", 0, 10000)
	add("flagproxy", 0, 6000)
	add("bare", 0, 14000)
	add("bare", 1, 8000)
	add("flagproxy", 1, 6000)
	got := r.ratios(cellKey{"a", "flagproxy"}, func(m measurement) float64 { return m.sat.RPS() })
	if want := []float64{0.5, 0.75}; !slices.Equal(got, want) {
		t.Errorf("ratios = %v, want %v", got, want)
	}
}

// TestRoundPlan checks that each goal's pair is measured back to back,
// with one side around the other, and that every server is measured.
func TestRoundPlan(t *testing.T) {
	servers := []string{"flagproxy", "bare", "bare+header", "nginx"}
	all, err := pickScenarios("a,b,c,d", 10)
	if err != nil {
		t.Fatal(err)
	}
	a := &all[0]
	render := func(steps []step) string {
		var out []string
		for _, st := range steps {
			name := st.srv + "/" + st.traffic.id
			if st.ref {
				name += "*"
			}
			if st.cell != steps[0].cell {
				t.Errorf("step %+v filed under another scenario than the first", st)
			}
			out = append(out, name)
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		round int
		s     scenario
		a     *scenario
		want  string
	}{
		{0, all[0], a, "bare/a flagproxy/a bare/a bare+header/a nginx/a"},
		{1, all[0], a, "bare/a flagproxy/a bare/a nginx/a bare+header/a"},
		{0, all[1], a, "bare/b flagproxy/b bare/b bare+header/b nginx/b"},
		{0, all[2], a, "flagproxy/a* flagproxy/c flagproxy/a* bare/c bare+header/c nginx/c"},
		{2, all[2], a, "flagproxy/a* flagproxy/c flagproxy/a* nginx/c bare/c bare+header/c"},
		{0, all[2], nil, "flagproxy/c bare/c bare+header/c nginx/c"},
		{1, all[3], a, "bare/d bare+header/d nginx/d flagproxy/d"},
	} {
		if got := render(roundPlan(c.round, c.s, servers, c.a)); got != c.want {
			t.Errorf("round %d, (%s), a %v: %s, want %s", c.round, c.s.id, c.a != nil, got, c.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i))
	}
	if p50, p99 := percentile(s, 50), percentile(s, 99); p50 != 50 || p99 != 99 {
		t.Errorf("p50 %d p99 %d, want 50 and 99", p50, p99)
	}
}

func TestFlagRowsMixRules(t *testing.T) {
	rows := flagRows(50, 100)
	if len(rows) != 50 || rows[0].name != loggedInFlag || !rows[0].authenticated || rows[0].superusers {
		t.Fatalf("want 50 rows with %s first, on for authenticated users only: %+v", loggedInFlag, rows[0])
	}
	var everyone, percent, staff, users, groups, languages, testing int
	for _, r := range rows[1:] {
		switch {
		case r.everyone != nil:
			everyone++
		case r.testing:
			testing++
		case r.percent != nil:
			percent++
		case r.staff:
			staff++
		case len(r.users) > 0:
			users++
		case len(r.groups) > 0:
			groups++
		case r.languages != "":
			languages++
		}
	}
	for name, n := range map[string]int{"everyone": everyone, "percent": percent, "staff": staff, "users": users,
		"groups": groups, "languages": languages, "testing": testing} {
		if n == 0 {
			t.Errorf("no %s flag", name)
		}
	}
}
