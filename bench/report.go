package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

type cellKey struct{ scenario, server string }

// report collects the measurements and renders them.
type report struct {
	o         options
	scenarios []scenario
	servers   []string
	results   map[cellKey][]measurement
	// refs are flagproxy's measurements with (a)'s traffic around each of
	// its measurements in (c), for the rotation goal (see roundPlan).
	refs     []measurement
	machine  string
	pageSize int
	elapsed  time.Duration
	// headerBytes is, by scenario, the size of flagproxy's flags header,
	// which bare+header adds.
	headerBytes map[string]int64
}

// spread is a median with the smallest and largest value.
type spread struct{ med, lo, hi float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{math.NaN(), math.NaN(), math.NaN()}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{med, s[0], s[len(s)-1]}
}

// format renders "med (lo–hi)" with f for each number; one round shows
// the value alone.
func (s spread) format(f func(float64) string) string {
	if math.IsNaN(s.med) {
		return "–"
	}
	if s.lo == s.hi {
		return f(s.med)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.med), f(s.lo), f(s.hi))
}

// metric is one reported quantity of a measurement.
type metric struct {
	name string
	get  func(m measurement) float64
	f    func(float64) string
}

var metrics = []metric{
	{"req/s", func(m measurement) float64 { return m.sat.RPS() }, thousands},
	{"CPU µs/req", func(m measurement) float64 { return m.cpuPerReq }, fixed(1)},
	{"p50 ms sat.", func(m measurement) float64 { return msf(m.sat.P50) }, fixed(2)},
	{"p99 ms sat.", func(m measurement) float64 { return msf(m.sat.P99) }, fixed(2)},
	{"p50 ms @rate", func(m measurement) float64 { return msf(m.fixed.P50) }, fixed(2)},
	{"p99 ms @rate", func(m measurement) float64 { return msf(m.fixed.P99) }, fixed(2)},
	{"peak RSS MiB", func(m measurement) float64 { return float64(m.rss) / (1 << 20) }, fixed(1)},
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fixed(digits int) func(float64) string {
	return func(v float64) string { return fmt.Sprintf("%.*f", digits, v) }
}

// thousands renders a whole number with thin separators: 12,345.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ratio(v float64) string { return fmt.Sprintf("×%.2f", v) }

// values returns get over the rounds of a cell.
func (r *report) values(k cellKey, get func(measurement) float64) []float64 {
	var out []float64
	for _, m := range r.results[k] {
		out = append(out, get(m))
	}
	return out
}

// ratios returns, round by round, get(server) / get(bare), where bare
// is the mean of the bare proxy's measurements in that round (two, around
// flagproxy's, in the scenarios whose goals compare them; see roundPlan).
func (r *report) ratios(k cellKey, get func(measurement) float64) []float64 {
	bare := r.results[cellKey{k.scenario, "bare"}]
	var out []float64
	for _, m := range r.results[k] {
		if b := meanOf(bare, m.round, get); b != 0 {
			out = append(out, get(m)/b)
		}
	}
	return out
}

// meanOf is the mean of get over the measurements of ms in round; 0 if
// there are none.
func meanOf(ms []measurement, round int, get func(measurement) float64) float64 {
	var sum float64
	n := 0
	for _, m := range ms {
		if m.round == round {
			sum += get(m)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// rotation returns, round by round, flagproxy's requests a second in
// scenario c over refs' of the same round (their mean): many sessions
// against one.
func (r *report) rotation(refs []measurement) []float64 {
	rps := func(m measurement) float64 { return m.sat.RPS() }
	var out []float64
	for _, c := range r.results[cellKey{"c", "flagproxy"}] {
		if a := meanOf(refs, c.round, rps); a > 0 {
			out = append(out, rps(c)/a)
		}
	}
	return out
}

func (r *report) markdown() string {
	var b strings.Builder
	o := r.o
	load := "wrk, 1 thread"
	if o.load == "go" || !strings.Contains(r.machine, "wrk ") {
		load = "the Go closed-loop client"
	}
	fmt.Fprintf(&b, "### Benchmark\n\n")
	fmt.Fprintf(&b, "%s\n\n", r.machine)
	rounds := "rounds"
	if o.rounds == 1 {
		rounds = "round"
	}
	fmt.Fprintf(&b, "`go run ./bench%s`: %d interleaved %s, each server started fresh per scenario; %d s at saturation "+
		"(%d connections, %s) after %d s of warm-up%s, then %d req/s for %d s (Go client, open loop). "+
		"Median (min–max) over the rounds. The site's database is %s; the upstream answers a %d-byte page. "+
		"CPU µs/req is the proxy's utime+stime over the saturation run divided by its requests; peak RSS is VmHWM "+
		"(nginx: master + worker). Total time %s.\n\n",
		r.flagsUsed(), o.rounds, rounds, int(o.duration.Seconds()), o.conns, load, int(o.warmup.Seconds()), r.warmupNote(), o.rate,
		int(o.rateFor.Seconds()), o.db, r.pageSize, r.elapsed.Round(time.Second))
	if r.bracketsBare() {
		b.WriteString("This machine's neighbours change its speed within seconds, so each goal's pair is measured back to back, " +
			"one side twice, around the other: in (a) and (b) the bare proxy right before and right after flagproxy " +
			"(a ratio to the bare proxy is to the mean of the two, and its rows count both), and in (c) flagproxy " +
			"with (a)'s traffic right before and right after flagproxy with (c)'s. The other servers follow, in an " +
			"order that rotates from round to round.\n\n")
	}
	b.WriteString("A returning visitor sends back, with every request, the cookies its first visits to flagproxy got " +
		"(its dwf_ cookies and when they were renewed), as a browser does; the other scenarios' visitors never " +
		"send them back, so their percentage flags are rolled afresh on every request.\n\n")
	if slices.Contains(r.servers, "bare+header") {
		b.WriteString("bare+header is the bare proxy adding to every request as many bytes of headers as flagproxy's " +
			"flags header took in that scenario (its X-Flagproxy-* lines as the upstream got them, cut in values of " +
			"at most 8,000 bytes as flagproxy cuts a large value): the cost of carrying the decisions, without deciding them.\n\n")
	}

	b.WriteString("| scenario | server |")
	for _, m := range metrics {
		b.WriteString(" " + strings.Replace(m.name, "@rate", fmt.Sprintf("@%d/s", o.rate), 1) + " |")
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---:|", len(metrics)) + "\n")
	for _, s := range r.scenarios {
		for _, srv := range r.servers {
			k := cellKey{s.id, srv}
			fmt.Fprintf(&b, "| (%s) %s | %s |", s.id, s.title, r.serverTitle(s.id, srv))
			for _, m := range metrics {
				b.WriteString(" " + spreadOf(r.values(k, m.get)).format(m.f) + " |")
			}
			b.WriteString("\n")
		}
	}

	b.WriteString("\nRatio to the bare `httputil.ReverseProxy` in the same round, median (min–max):\n\n")
	b.WriteString("| scenario | server |")
	for _, m := range metrics {
		b.WriteString(" " + strings.Replace(m.name, "@rate", fmt.Sprintf("@%d/s", o.rate), 1) + " |")
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---:|", len(metrics)) + "\n")
	for _, s := range r.scenarios {
		for _, srv := range r.servers {
			if srv == "bare" {
				continue
			}
			k := cellKey{s.id, srv}
			fmt.Fprintf(&b, "| (%s) | %s |", s.id, r.serverTitle(s.id, srv))
			for _, m := range metrics {
				b.WriteString(" " + spreadOf(r.ratios(k, m.get)).format(ratio) + " |")
			}
			b.WriteString("\n")
		}
	}

	b.WriteString("\n")
	for _, s := range r.scenarios {
		k := cellKey{s.id, "flagproxy"}
		if len(r.results[k]) == 0 {
			continue
		}
		anon := spreadOf(r.values(k, func(m measurement) float64 { return 100 * m.upstream.anonymousShare() }))
		sampled := spreadOf(r.values(k, func(m measurement) float64 { return float64(m.upstream.Sampled) }))
		lookups := spreadOf(r.values(k, func(m measurement) float64 { return m.lookupsPerSec }))
		perSec := func(v float64) string {
			if v < 100 {
				return fmt.Sprintf("%.1f", v)
			}
			return thousands(v)
		}
		fmt.Fprintf(&b, "- (%s) flagproxy: %s %% of responses served as anonymous (the upstream decoded %s requests a run); "+
			"identity lookups %s/s", s.id, anon.format(fixed(1)), sampled.format(thousands), lookups.format(perSec))
		queries := r.values(k, func(m measurement) float64 { return m.queriesPerSec })
		if len(queries) > 0 && queries[0] >= 0 {
			fmt.Fprintf(&b, ", identity queries %s/s", spreadOf(queries).format(perSec))
		} else {
			b.WriteString(" (no `flagproxy_identity_queries_total` yet)")
		}
		memo := spreadOf(r.values(k, func(m measurement) float64 { return 100 * m.memoHits }))
		memoMiB := spreadOf(r.values(k, func(m measurement) float64 { return m.memoMiB }))
		fmt.Fprintf(&b, " at saturation; %s %% of evaluations answered by the decision memo, which held %s MiB.\n",
			memo.format(fixed(0)), memoMiB.format(fixed(1)))
	}
	// The goal's figure: against the measurements right around (c)'s
	// (see roundPlan); then, or without them, against (a)'s own.
	if rot := r.rotation(r.refs); len(rot) > 0 {
		fmt.Fprintf(&b, "- flagproxy's req/s in (c) against the mean of its req/s with (a)'s traffic measured right before and "+
			"right after, on the same site: %s (the goal is ×0.9 or more).\n", spreadOf(rot).format(ratio))
	}
	if rot := r.rotation(r.results[cellKey{"a", "flagproxy"}]); len(rot) > 0 {
		fmt.Fprintf(&b, "- flagproxy's req/s in (c) against its req/s in (a) in the same round: %s", spreadOf(rot).format(ratio))
		if len(r.refs) > 0 {
			b.WriteString(" (measured further apart: (a)'s block of the round comes first).\n")
		} else {
			b.WriteString(" (the goal is ×0.9 or more).\n")
		}
	}
	// How busy each side's CPU was: a client CPU near 100% means the
	// load generator or upstream, not the proxy, set the pace.
	if r.results[cellKey{r.scenarios[0].id, r.servers[0]}][0].clientCPU > 0 {
		b.WriteString("- CPU busy at saturation, proxy CPU / client CPU, and the upstream's CPU µs/req (medians):")
		var cells []string
		for _, s := range r.scenarios {
			for _, srv := range r.servers {
				k := cellKey{s.id, srv}
				sv := spreadOf(r.values(k, func(m measurement) float64 { return 100 * m.serverCPU }))
				cv := spreadOf(r.values(k, func(m measurement) float64 { return 100 * m.clientCPU }))
				uv := spreadOf(r.values(k, func(m measurement) float64 { return m.upstreamCPUPerReq }))
				cells = append(cells, fmt.Sprintf(" (%s) %s %.0f%%/%.0f%%, %.1f µs", s.id, srv, sv.med, cv.med, uv.med))
			}
		}
		b.WriteString(strings.Join(cells, ";") + ".\n")
	}
	var errs []string
	for k, ms := range r.results {
		for _, m := range ms {
			if n := m.sat.Errors + m.fixed.Errors; n > 0 {
				errs = append(errs, fmt.Sprintf("(%s) %s round %d: %d", k.scenario, k.server, m.round+1, n))
			}
		}
	}
	slices.Sort(errs)
	if len(errs) > 0 {
		b.WriteString("- Failed requests (errors or non-2xx): " + strings.Join(errs, "; ") + "\n")
	} else {
		b.WriteString("- No request failed.\n")
	}
	return b.String()
}

// bracketsBare reports whether roundPlan measured the bare proxy around
// flagproxy in some scenario of the run.
func (r *report) bracketsBare() bool {
	return slices.Contains(r.servers, "flagproxy") && slices.ContainsFunc(r.scenarios, func(s scenario) bool {
		return s.id == "a" || s.id == "b"
	})
}

// warmupNote names the longer warm-up of scenarios with rotating sessions,
// if any.
func (r *report) warmupNote() string {
	for _, s := range r.scenarios {
		if w := r.o.warmupOf(s); w != r.o.warmup {
			return fmt.Sprintf(" (%d s for (%s), so that its sessions are past their first re-checks: the steady state)", int(w.Seconds()), s.id)
		}
	}
	return ""
}

// flagsUsed repeats the options that change the measurement for the
// report's command (not -out, -keep or -v).
func (r *report) flagsUsed() string {
	var out []string
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		switch name {
		case "out":
			if !hasValue {
				i++ // its value is the next argument
			}
			continue
		case "keep", "v":
			continue
		}
		out = append(out, args[i])
	}
	if len(out) == 0 {
		return ""
	}
	return " " + strings.Join(out, " ")
}

// serverTitle names server srv in scenario id's rows.
func (r *report) serverTitle(id, srv string) string {
	switch srv {
	case "bare":
		return "bare ReverseProxy"
	case "bare+header":
		return fmt.Sprintf("bare ReverseProxy + flagproxy's header bytes (%s B)", thousands(float64(r.headerBytes[id])))
	default:
		return srv
	}
}

// describeMachine names the CPU, cores, Go, nginx and wrk, and the date.
func describeMachine(e *env) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	parts := []string{fmt.Sprintf("%s, %d cores", model, runtime.NumCPU())}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		parts = append(parts, strings.TrimPrefix(strings.TrimSpace(string(out)), "go version "))
	}
	if e.nginx != "" {
		if out, err := exec.Command(e.nginx, "-v").CombinedOutput(); err == nil {
			parts = append(parts, strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: "))
		}
	}
	if e.wrk != nil {
		out, _ := exec.Command(e.wrk.path, "--version").CombinedOutput()
		if f := strings.Fields(string(out)); len(f) >= 2 {
			parts = append(parts, "wrk "+f[1])
		}
	}
	pin := "no CPU pinning (one CPU)"
	if e.serverCPU != "" {
		pin = fmt.Sprintf("proxy on CPU %s, load generator on CPU %s, upstream on CPU %s (taskset)", e.serverCPU, e.clientCPU, e.upstreamCPU)
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = fmt.Sprintf(" Load average at the start: %s %s %s.", f[0], f[1], f[2])
		}
	}
	return fmt.Sprintf("Machine: %s; %s. %s.%s", strings.Join(parts, ", "), time.Now().UTC().Format("2006-01-02"), pin, load)
}
