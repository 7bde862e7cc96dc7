// Command bench measures what flagproxy costs in front of a site, against
// a bare httputil.ReverseProxy and nginx in front of the same upstream,
// and against the bare proxy adding as many header bytes as flagproxy's
// flags header (bare+header): what carrying the decisions costs.
//
// Usage, from the repository root:
//
//	go run ./bench [-rounds 3] [-db sqlite|postgres] [-out bench.md]
//
// It builds flagproxy, a bare reverse proxy (bench/bareproxy) and a small
// upstream (bench/upstream); makes Django databases without Django
// (djangodb/testdata/schema, waffle flags of every rule, users with real
// signed db sessions); then, over several interleaved rounds, starts each
// proxy fresh for each scenario and measures requests per second at
// saturation, server CPU per request, latency at saturation and at a fixed
// rate, and peak RSS. It prints a Markdown report on standard output.
//
// Load comes from wrk when it is installed (else from a Go closed loop);
// the fixed rate always from the Go client. With two CPUs or more the
// proxy runs on CPU 1 and the load generator and upstream on CPU 0
// (upstream on CPU 2 when there is one). nginx runs as a child with its
// own configuration in a temporary directory. Everything listens on
// loopback, every run is bounded in time, and every child is stopped at
// the end, also on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flagproxy/flagproxy/bench/internal/procs"
)

// options are the harness's flags.
type options struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	warmupC     time.Duration
	rate        int
	rateFor     time.Duration
	conns       int
	sessions    int
	scenarios   string
	servers     string
	load        string
	db          string
	postgresDSN string
	out         string
	keep        bool
	verbose     bool
	profile     string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; each reports the median, min and max")
	fs.DurationVar(&o.duration, "duration", 4*time.Second, "saturation run per measurement (whole seconds)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "load before each saturation run, not measured (whole seconds)")
	fs.DurationVar(&o.warmupC, "warmup-c", 15*time.Second, "warm-up of scenario c instead, if longer: its sessions are re-checked every few seconds, so the steady state comes after a few identity TTLs; with -warmup 0s, 0s measures the cold start (whole seconds)")
	fs.IntVar(&o.rate, "rate", 500, "fixed rate in requests per second for the latency run")
	fs.DurationVar(&o.rateFor, "rate-duration", 2*time.Second, "fixed-rate run per measurement")
	fs.IntVar(&o.conns, "connections", 64, "connections at saturation")
	fs.IntVar(&o.sessions, "sessions", 10000, "rotating logged-in sessions of scenario c")
	fs.StringVar(&o.scenarios, "scenarios", "a,b,c,d", "scenarios to run: a (50 flags, one returning visitor), b (1,000 flags, one returning visitor), c (50 flags, rotating returning sessions), d (1,000 flags, one visitor who never sends cookies back)")
	fs.StringVar(&o.servers, "servers", "flagproxy,bare,bare+header,nginx", "servers to measure: flagproxy, bare, bare+header (the bare proxy adding as many header bytes as flagproxy's flags header) and nginx (left out when not installed)")
	fs.StringVar(&o.load, "load", "auto", "saturation load generator: auto (wrk if installed), wrk or go")
	fs.StringVar(&o.db, "db", "sqlite", "the site's database: sqlite or postgres (needs -postgres-dsn)")
	fs.StringVar(&o.postgresDSN, "postgres-dsn", os.Getenv("FLAGPROXY_TEST_POSTGRES_DSN"), "PostgreSQL to create a database in (default $FLAGPROXY_TEST_POSTGRES_DSN)")
	fs.StringVar(&o.out, "out", "", "also write the report to this `file`")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	fs.StringVar(&o.profile, "profile", "", "write a CPU profile of flagproxy's saturation runs to this `directory`, one file per measurement (<scenario>-<round>-<step>.pprof, the step in the round's order; read with go tool pprof)")
	fs.BoolVar(&o.verbose, "v", false, "log each measurement")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if o.rounds < 1 || o.rounds > 50 {
		errs = append(errs, errors.New("-rounds: from 1 to 50"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"-duration", o.duration}, {"-warmup", o.warmup}, {"-warmup-c", o.warmupC}} {
		if d.v < 0 || d.v > 10*time.Minute || d.v%time.Second != 0 {
			errs = append(errs, fmt.Errorf("%s: whole seconds up to 10m", d.name))
		}
	}
	if o.duration < time.Second {
		errs = append(errs, errors.New("-duration: at least 1s"))
	}
	if o.rate < 1 || o.rate > 100000 || o.rateFor <= 0 || o.rateFor > 10*time.Minute {
		errs = append(errs, errors.New("-rate from 1 to 100000 and -rate-duration up to 10m"))
	}
	if o.conns < 1 || o.conns > 10000 || o.sessions < 1 || o.sessions > 1000000 {
		errs = append(errs, errors.New("-connections from 1 to 10000 and -sessions from 1 to 1000000"))
	}
	if o.load != "auto" && o.load != "wrk" && o.load != "go" {
		errs = append(errs, errors.New("-load: auto, wrk or go"))
	}
	if o.db != "sqlite" && o.db != "postgres" {
		errs = append(errs, errors.New("-db: sqlite or postgres"))
	}
	if o.db == "postgres" && o.postgresDSN == "" {
		errs = append(errs, errors.New("-db postgres needs -postgres-dsn or FLAGPROXY_TEST_POSTGRES_DSN"))
	}
	return o, errors.Join(errs...)
}

func main() {
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

// env is everything the measurements share.
type env struct {
	o        options
	root     string
	dir      string
	bin      map[string]string // built programs by name
	nginx    string            // nginx's path, "" when not used
	wrk      *wrkRunner        // nil: the Go closed loop
	children *children
	// CPU lists for taskset ("" when there is one CPU).
	serverCPU, clientCPU, upstreamCPU string
	upstream                          string // http://addr
	upstreamPID                       int
	// back holds, by scenario, the cookies its returning visitors send
	// back (see firstVisits).
	back map[string][]string
	// headerBytes holds, by scenario, the size of the flags header
	// flagproxy sends, which bare+header adds (see firstVisits).
	headerBytes map[string]int64
	logf        func(format string, args ...any)
}

func run(ctx context.Context, o options) error {
	start := time.Now()
	root, err := procs.ModuleRoot("go run ./bench")
	if err != nil {
		return err
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return fmt.Errorf("-profile: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "flagproxy-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		log.Printf("keeping %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	e := &env{o: o, root: root, dir: dir, bin: map[string]string{}, children: newChildren(), back: map[string][]string{},
		headerBytes: map[string]int64{}, logf: func(string, ...any) {}}
	defer e.children.stopAll()
	if o.verbose {
		e.logf = log.Printf
	}
	scenarios, err := pickScenarios(o.scenarios, o.sessions)
	if err != nil {
		return err
	}
	servers, err := e.pickServers(o.servers)
	if err != nil {
		return err
	}
	if err := e.pickLoad(); err != nil {
		return err
	}
	if n := runtime.NumCPU(); n >= 2 {
		e.serverCPU, e.clientCPU, e.upstreamCPU = "1", "0", "0"
		if n >= 3 {
			e.upstreamCPU = "2"
		}
	}

	log.Printf("building flagproxy, bench/upstream and bench/bareproxy")
	for name, pkg := range map[string]string{"flagproxy": "./cmd/flagproxy", "upstream": "./bench/upstream", "bareproxy": "./bench/bareproxy"} {
		out := filepath.Join(dir, name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
		e.bin[name] = out
	}

	sites := map[siteSpec]*site{}
	for _, s := range scenarios {
		if sites[s.site] != nil {
			continue
		}
		log.Printf("creating a %s database: %d flags, %d users with sessions", o.db, s.site.Flags, s.site.Users)
		var st *site
		if o.db == "postgres" {
			st, err = createPostgres(ctx, root, o.postgresDSN, s.site)
		} else {
			st, err = createSQLite(ctx, root, filepath.Join(dir, fmt.Sprintf("site-%d-%d.sqlite3", s.site.Flags, s.site.Users)), s.site)
		}
		if err != nil {
			return err
		}
		defer st.cleanup()
		sites[s.site] = st
	}
	settings := filepath.Join(dir, "settings.json")
	if err := os.WriteFile(settings, []byte(settingsJSON()), 0o600); err != nil {
		return err
	}

	// The harness itself generates the fixed-rate load: it moves to the
	// client CPU once the builds are done.
	if e.clientCPU != "" {
		if out, err := exec.Command("taskset", "-a", "-p", "-c", e.clientCPU, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			return fmt.Errorf("taskset: %v: %s", err, out)
		}
	}
	up, addr, err := e.children.startReporting("upstream", e.upstreamCPU, e.bin["upstream"], "-listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	e.upstreamPID = up.cmd.Process.Pid
	e.upstream = "http://" + addr
	if err := waitHTTP(ctx, e.upstream+"/__bench/stats", 10*time.Second); err != nil {
		return err
	}

	for _, s := range scenarios {
		if err := e.firstVisits(ctx, s, sites[s.site], settings, slices.Contains(servers, "bare+header")); err != nil {
			return fmt.Errorf("scenario %s: %w", s.id, err)
		}
	}
	rep := &report{o: o, scenarios: scenarios, servers: servers, headerBytes: e.headerBytes, results: map[cellKey][]measurement{}}
	rep.machine = describeMachine(e)
	if rep.pageSize, err = pageSize(ctx, e.upstream); err != nil {
		return err
	}
	var a *scenario
	if i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.id == "a" }); i >= 0 {
		a = &scenarios[i]
	}
	for round := range o.rounds {
		for _, s := range scenarios {
			for n, st := range roundPlan(round, s, servers, a) {
				name := st.srv
				if st.ref {
					name += " (a)"
				}
				m, err := e.measure(ctx, st.srv, st.traffic, sites[st.traffic.site], settings, fmt.Sprintf("%s-%d-%d", st.cell, round+1, n+1))
				if err != nil {
					return fmt.Errorf("round %d, scenario %s, %s: %w", round+1, st.cell, name, err)
				}
				m.round = round
				if st.ref {
					rep.refs = append(rep.refs, m)
				} else {
					k := cellKey{st.cell, st.srv}
					rep.results[k] = append(rep.results[k], m)
				}
				// The upstream's CPU a request is a gauge of the machine's
				// speed: it does about the same work whichever proxy sends
				// the request (it decodes every 64th flags header).
				log.Printf("round %d/%d %s %-15s %8.0f req/s  %6.1f µs CPU/req (upstream %.1f)  p50 %s p99 %s  fixed p50 %s p99 %s  RSS %.1f MiB%s",
					round+1, o.rounds, s.id, name, m.sat.RPS(), m.cpuPerReq, m.upstreamCPUPerReq, ms(m.sat.P50), ms(m.sat.P99), ms(m.fixed.P50), ms(m.fixed.P99),
					float64(m.rss)/(1<<20), m.extraLog())
			}
		}
	}
	rep.elapsed = time.Since(start)
	text := rep.markdown()
	fmt.Print(text)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// scenario is one workload.
type scenario struct {
	id       string
	title    string
	site     siteSpec
	sessions int // sessions the traffic rotates through
	// returning visitors send back the cookies their first visit got, as
	// a browser does; the others never do, so every percentage flag is
	// rolled afresh on every request.
	returning bool
}

// warmup is the load before s's saturation run.
func (o options) warmupOf(s scenario) time.Duration {
	if s.sessions > 1 {
		return max(o.warmup, o.warmupC)
	}
	return o.warmup
}

func pickScenarios(list string, sessions int) ([]scenario, error) {
	all := map[string]scenario{
		"a": {id: "a", title: "50 flags, 1 returning session", site: siteSpec{Flags: 50, Users: sessions}, sessions: 1, returning: true},
		"b": {id: "b", title: "1,000 flags, 1 returning session", site: siteSpec{Flags: 1000, Users: 100}, sessions: 1, returning: true},
		"c": {id: "c", title: fmt.Sprintf("50 flags, %s rotating returning sessions", thousands(float64(sessions))), site: siteSpec{Flags: 50, Users: sessions}, sessions: sessions, returning: true},
		"d": {id: "d", title: "1,000 flags, 1 session, no cookies back", site: siteSpec{Flags: 1000, Users: 100}, sessions: 1},
	}
	var out []scenario
	for _, id := range strings.Split(list, ",") {
		s, ok := all[strings.TrimSpace(id)]
		if !ok {
			return nil, fmt.Errorf("-scenarios: unknown %q (want a, b, c, d)", id)
		}
		out = append(out, s)
	}
	return out, nil
}

func (e *env) pickServers(list string) ([]string, error) {
	var out []string
	hasBare := false
	for _, s := range strings.Split(list, ",") {
		switch s = strings.TrimSpace(s); s {
		case "flagproxy", "bare", "bare+header":
			hasBare = hasBare || s == "bare"
			out = append(out, s)
		case "nginx":
			p, err := exec.LookPath("nginx")
			if err != nil {
				if _, statErr := os.Stat("/usr/sbin/nginx"); statErr != nil {
					log.Printf("nginx is not installed (apt-get install -y nginx): leaving it out")
					continue
				}
				p = "/usr/sbin/nginx"
			}
			e.nginx = p
			out = append(out, s)
		default:
			return nil, fmt.Errorf("-servers: unknown %q (want flagproxy, bare, bare+header, nginx)", s)
		}
	}
	if !hasBare {
		return nil, errors.New("-servers must include bare: every ratio is to it")
	}
	return out, nil
}

func (e *env) pickLoad() error {
	if e.o.load == "go" {
		return nil
	}
	p, err := exec.LookPath("wrk")
	if err != nil {
		if e.o.load == "wrk" {
			return errors.New("-load wrk: wrk is not installed (apt-get install -y wrk)")
		}
		log.Printf("wrk is not installed: the Go load generator drives saturation")
		return nil
	}
	e.wrk, err = newWrkRunner(p, e.dir)
	return err
}

// measurement is one server in one scenario in one round.
type measurement struct {
	round     int
	sat       loadResult
	fixed     loadResult
	cpuPerReq float64 // µs of server CPU per request at saturation
	rss       int64   // bytes
	serverCPU float64 // share of the server's CPU busy at saturation
	clientCPU float64 // share of the client's CPU busy at saturation
	// upstreamCPUPerReq is the upstream's CPU per request at saturation,
	// in µs: it must stay well below the proxy's.
	upstreamCPUPerReq float64
	// Scenario c, flagproxy: what the upstream saw and flagproxy counted.
	upstream      upstreamStats
	lookupsPerSec float64
	queriesPerSec float64 // -1: no such metric
	// memoHits is the share of evaluations the decision memo answered;
	// memoMiB what its entries held at the end of the saturation run.
	memoHits, memoMiB float64
}

func (m measurement) extraLog() string {
	s := ""
	if m.upstream.LoggedIn+m.upstream.Anonymous > 0 {
		s += fmt.Sprintf("  anonymous %.1f%%", 100*m.upstream.anonymousShare())
	}
	if m.lookupsPerSec > 0 {
		s += fmt.Sprintf("  lookups %.0f/s", m.lookupsPerSec)
	}
	if m.sat.Errors+m.fixed.Errors > 0 {
		s += fmt.Sprintf("  ERRORS %d+%d", m.sat.Errors, m.fixed.Errors)
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// pageSize is the length of the upstream's page.
func pageSize(ctx context.Context, upstream string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, upstream+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return len(b), err
}
