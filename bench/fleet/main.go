// Command fleet measures what a fleet of flagproxy sidecars costs the one
// PostgreSQL database they all read, and how long a flag change takes to
// reach every proxy's header.
//
// Usage, from the repository root:
//
//	go run ./bench/fleet [-n 1,10,50] [-modes notify,poll] [-server shared|private] [-out fleet.md]
//	go run ./bench/fleet -server private -modes notify,poll,replica,replica-poll
//
// It builds flagproxy once, creates a throwaway database
// flagproxy_fleet_<random> on the server of FLAGPROXY_TEST_POSTGRES_DSN
// (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)
// with the Django schema of djangodb/testdata/schema/postgres.sql and a
// flag set (200 waffle flags, about 1,000 user and 80 group links, 20
// switches, 10 samples), and drops it at the end. For each mode and fleet
// size it starts N flagproxy processes (GOMAXPROCS=1, loopback ports of
// their own, the product's default poll intervals) in front of one
// in-process upstream that answers with the snapshot version of the
// X-Flagproxy-Flags header it receives, then measures:
//
//   - idle, then with one flag updated -rate times a second: transactions
//     (pg_stat_database.xact_commit, the harness's own writes taken out),
//     tup_returned, connections (pg_stat_activity of the database), the CPU
//     time of the database's backends and of the proxies (/proc), and
//     statements, counted on the wire by a relay every proxy connects
//     through (PostgreSQL has no statement counter without
//     pg_stat_statements preloaded, which the harness may not configure);
//   - the delay from a change's commit until every proxy's header carries
//     the new version, probed through each proxy, and until each proxy
//     logged the new snapshot (exact, with no probing).
//
// Modes: notify (the triggers of flagproxy_django/notify.py installed,
// --notify=true) and poll (no triggers, --notify=false); with -server
// private also replica and replica-poll: the proxies read a hot standby of
// the private cluster (streaming replication) while the harness writes to
// the primary, with --notify=true (LISTEN is refused on a standby, so
// flagproxy falls back to polling) or --notify=false, and replica-split:
// --database the standby, --notify-database the primary. The shared server
// is never stopped or reconfigured: a fleet that would leave fewer than
// -reserve connections free for its other users is skipped, and one that
// drives the free connections below half of that is stopped. -server
// private runs everything in a throwaway cluster of its own instead
// (initdb into a temporary directory, loopback, -private-max-connections).
// Every run is bounded in time, and every child is stopped at the end, also
// on Ctrl-C.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flagproxy/flagproxy/bench/internal/procs"
	_ "github.com/lib/pq"
)

const defaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// fleetSecretKey is the SECRET_KEY the proxies get (visitors carry no
// session, so it only makes the configuration a realistic one).
const fleetSecretKey = "flagproxy-fleet-secret-key-not-for-production-0123456789"

type options struct {
	sizes        []int
	modes        []string
	window       time.Duration
	settle       time.Duration
	rate         float64
	changes      int
	gapMin       time.Duration
	gapMax       time.Duration
	changeWait   time.Duration
	probe        string
	server       string
	dsn          string
	reserve      int
	privateConns int
	pollInterval string
	fullReload   string
	baseline     bool
	seed         uint64
	out          string
	timeout      time.Duration
	verbose      bool
	spec         siteSpec
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("n", "1,10,50", "fleet sizes, comma-separated (1 to 200 each)")
	modes := fs.String("modes", "notify,poll", "modes: notify (triggers, --notify=true), poll (no triggers, --notify=false); with -server private also replica and replica-poll (the proxies read a hot standby, --notify=true or false) and replica-split (--database the standby, --notify-database the primary)")
	fs.DurationVar(&o.window, "window", 20*time.Second, "length of the idle and of the changing measurement window")
	fs.DurationVar(&o.settle, "settle", 12*time.Second, "wait after the fleet is ready before measuring (PostgreSQL flushes an idle backend's statistics within 10 s)")
	fs.Float64Var(&o.rate, "rate", 5, "flag updates per second in the changing window")
	fs.IntVar(&o.changes, "changes", 20, "changes whose delay is measured, per fleet")
	fs.DurationVar(&o.gapMin, "gap-min", 300*time.Millisecond, "least pause between two measured changes (after the previous one reached every proxy)")
	fs.DurationVar(&o.gapMax, "gap-max", 1300*time.Millisecond, "longest pause between two measured changes (uniformly random in between)")
	fs.DurationVar(&o.changeWait, "change-timeout", 5*time.Second, "give up on a proxy that has not shown a change after this long")
	fs.StringVar(&o.probe, "probe", "header", "how a change is seen: header (requests through every proxy, and the proxies' logs) or log (the proxies' logs only: no probing load)")
	fs.StringVar(&o.server, "server", "shared", "shared: a throwaway database on the server of -postgres-dsn; private: a throwaway cluster of our own")
	dsnDefault := os.Getenv("FLAGPROXY_TEST_POSTGRES_DSN")
	if dsnDefault == "" {
		dsnDefault = defaultDSN
	}
	fs.StringVar(&o.dsn, "postgres-dsn", dsnDefault, "the shared server (default $FLAGPROXY_TEST_POSTGRES_DSN, else "+defaultDSN+")")
	fs.IntVar(&o.reserve, "reserve", 20, "connections to leave free for the shared server's other users")
	fs.IntVar(&o.privateConns, "private-max-connections", 300, "max_connections of the -server private cluster")
	fs.StringVar(&o.pollInterval, "poll-interval", "", "--poll-interval for the proxies (default: flagproxy's own, 1s on PostgreSQL)")
	fs.StringVar(&o.fullReload, "full-reload-interval", "", "--full-reload-interval for the proxies (default: flagproxy's own, 30s)")
	fs.BoolVar(&o.baseline, "baseline", true, "measure the database with no proxy first (the harness's own writes, autovacuum)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the pauses between changes")
	fs.StringVar(&o.out, "out", "", "also write the report to this `file`")
	fs.DurationVar(&o.timeout, "timeout", 45*time.Minute, "stop everything after this long")
	fs.BoolVar(&o.verbose, "v", false, "log progress in detail")
	fs.IntVar(&o.spec.Flags, "flags", 200, "waffle flags")
	fs.IntVar(&o.spec.Switches, "switches", 20, "waffle switches")
	fs.IntVar(&o.spec.Samples, "samples", 10, "waffle samples")
	fs.IntVar(&o.spec.Users, "users", 500, "users")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.spec.Groups, o.spec.UserLinkedFlags, o.spec.UsersPerFlag, o.spec.GroupLinkedFlags = 10, 50, 20, 40
	var errs []error
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 200 {
			errs = append(errs, fmt.Errorf("-n: %q is not a size from 1 to 200", s))
			continue
		}
		o.sizes = append(o.sizes, n)
	}
	for _, m := range strings.Split(*modes, ",") {
		m = strings.TrimSpace(m)
		if _, ok := modeSpecs[m]; !ok {
			errs = append(errs, fmt.Errorf("-modes: %q is not notify, poll, replica, replica-poll or replica-split", m))
			continue
		}
		o.modes = append(o.modes, m)
	}
	if o.window < 2*time.Second || o.window > 10*time.Minute {
		errs = append(errs, errors.New("-window: from 2s to 10m"))
	}
	if o.settle < 0 || o.settle > 5*time.Minute {
		errs = append(errs, errors.New("-settle: up to 5m"))
	}
	if o.rate <= 0 || o.rate > 100 {
		errs = append(errs, errors.New("-rate: above 0, at most 100"))
	}
	if o.changes < 1 || o.changes > 500 {
		errs = append(errs, errors.New("-changes: from 1 to 500"))
	}
	if o.gapMin < 25*time.Millisecond || o.gapMax < o.gapMin || o.gapMax > time.Minute {
		errs = append(errs, errors.New("-gap-min at least 25ms (flagproxy coalesces changes within 20ms), -gap-max at least -gap-min and at most 1m"))
	}
	if o.changeWait < 100*time.Millisecond || o.changeWait > 5*time.Minute {
		errs = append(errs, errors.New("-change-timeout: from 100ms to 5m"))
	}
	if o.probe != "header" && o.probe != "log" {
		errs = append(errs, errors.New("-probe: header or log"))
	}
	if o.server != "shared" && o.server != "private" {
		errs = append(errs, errors.New("-server: shared or private"))
	}
	if o.reserve < 5 {
		errs = append(errs, errors.New("-reserve: at least 5"))
	}
	if o.privateConns < 20 || o.privateConns > 2000 {
		errs = append(errs, errors.New("-private-max-connections: from 20 to 2000"))
	}
	for _, m := range o.modes {
		if modeSpecs[m].standby && o.server != "private" {
			errs = append(errs, fmt.Errorf("-modes %s needs -server private (a hot standby of a cluster of our own)", m))
		}
	}
	for _, d := range []struct{ name, v string }{{"-poll-interval", o.pollInterval}, {"-full-reload-interval", o.fullReload}} {
		if d.v == "" {
			continue
		}
		if v, err := time.ParseDuration(d.v); err != nil || v <= 0 || v > time.Hour {
			errs = append(errs, fmt.Errorf("%s: a positive duration up to 1h", d.name))
		}
	}
	if o.timeout < time.Minute {
		errs = append(errs, errors.New("-timeout: at least 1m"))
	}
	if o.spec.Flags < 10 || o.spec.Flags > 5000 || o.spec.Users < 50 || o.spec.Users > 100000 ||
		o.spec.Switches < 0 || o.spec.Switches > 1000 || o.spec.Samples < 0 || o.spec.Samples > 1000 {
		errs = append(errs, errors.New("-flags from 10 to 5000, -users from 50 to 100000, -switches and -samples up to 1000"))
	}
	return o, errors.Join(errs...)
}

func main() {
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		stop()
		cancel()
		os.Exit(1)
	}
}

// modeSpec is what a mode sets up.
type modeSpec struct {
	notify   bool // --notify
	triggers bool // notify.py's triggers installed (on the primary)
	standby  bool // the proxies read the hot standby
	// split: --notify-database is the primary while --database is the
	// standby (LISTEN where notifications work, reads on the replica).
	split bool
}

var modeSpecs = map[string]modeSpec{
	"notify":        {notify: true, triggers: true},
	"poll":          {},
	"replica":       {notify: true, triggers: true, standby: true},
	"replica-poll":  {triggers: true, standby: true},
	"replica-split": {notify: true, triggers: true, standby: true, split: true},
}

// target is a server the proxies read: the primary, or its hot standby.
type target struct {
	name     string // "primary" or "standby"
	obs      *observer
	wire     *wireCounter // the relay the proxies connect through
	proxyDSN string
}

// env is what the cells share.
type env struct {
	o        options
	root     string
	bin      string
	db       *fleetDB
	primary  *target
	standby  *target // nil without replica modes
	upstream string
	reg      *registry
	triggers triggerSQL
	admin    *http.Client // /readyz, /metrics
	probe    *http.Client // requests through the proxies
	seq      atomic.Int64 // changes written so far
	logf     func(string, ...any)
	vlogf    func(string, ...any)

	versionsMu sync.Mutex
	versions   map[string]time.Time // every snapshot version any proxy logged, first time
}

func run(ctx context.Context, o options) error {
	began := time.Now()
	root, err := procs.ModuleRoot("go run ./bench/fleet")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "flagproxy-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &env{o: o, root: root, reg: newRegistry(), logf: log.Printf, vlogf: func(string, ...any) {},
		versions: map[string]time.Time{}}
	if o.verbose {
		e.vlogf = log.Printf
	}
	defer e.reg.stopAll()

	e.triggers, err = readNotifyPy(root)
	if err != nil {
		return err
	}
	e.logf("building flagproxy")
	e.bin = filepath.Join(dir, "flagproxy")
	build := exec.CommandContext(ctx, "go", "build", "-o", e.bin, "./cmd/flagproxy")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/flagproxy: %w\n%s", err, out)
	}

	dsn := o.dsn
	var standbyDSN string
	if o.server == "private" {
		c, err := startCluster(ctx, o.privateConns, e.logf)
		if err != nil {
			return err
		}
		defer c.remove()
		dsn = c.dsn()
		if slices.ContainsFunc(o.modes, func(m string) bool { return modeSpecs[m].standby }) {
			sb, err := c.startStandby(ctx, e.logf)
			if err != nil {
				return err
			}
			defer sb.stop()
			standbyDSN = sb.dsn()
		}
	}
	e.db, err = createDB(ctx, root, dsn, o.spec)
	if err != nil {
		return err
	}
	defer func() {
		if err := e.db.drop(); err != nil {
			e.logf("dropping %s: %v", e.db.name, err)
		} else {
			e.logf("dropped database %s", e.db.name)
		}
	}()
	e.logf("database %s created (%s)", e.db.name, e.db.serverInfo(ctx))

	e.primary, err = newTarget("primary", e.db.obs, e.db.url)
	if err != nil {
		return err
	}
	defer e.primary.wire.close()
	if standbyDSN != "" {
		obs, err := openStandbyObserver(ctx, standbyDSN, e.db.name, o.spec.Flags)
		if err != nil {
			return err
		}
		defer obs.admin.Close()
		if e.standby, err = newTarget("standby", obs, obs.url); err != nil {
			return err
		}
		defer e.standby.wire.close()
	}

	up, err := startUpstream()
	if err != nil {
		return err
	}
	defer up.Close()
	e.upstream = "http://" + up.Addr
	// Deferred calls run last first: every proxy is stopped before the
	// relays close, the database is dropped and a private cluster stops
	// (each cell also stops its own fleet).
	defer e.reg.stopAll()

	e.admin = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}}
	e.probe = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1,
		IdleConnTimeout: 30 * time.Second, DisableCompression: true}}
	defer e.admin.CloseIdleConnections()
	defer e.probe.CloseIdleConnections()

	counts, err := e.db.siteCounts(ctx)
	if err != nil {
		return err
	}
	rep := &report{opts: o, started: began, site: counts, server: e.db.serverInfo(ctx), serverKind: o.server,
		dbName: e.db.name, cpus: runtime.NumCPU(), goVersion: runtime.Version(), commit: gitDescribe(root),
		localServer: e.db.local}
	rng := rand.New(rand.NewPCG(o.seed, 0x5eed))

	if o.baseline {
		if err := e.uninstall(ctx); err != nil {
			return err
		}
		for _, t := range []*target{e.primary, e.standby} {
			if t == nil {
				continue
			}
			e.logf("baseline on the %s: no proxy, %v idle then %v of changes", t.name, o.window, o.window)
			c := cellResult{Mode: "none", N: 0, Server: t.name}
			if err := sleepCtx(ctx, o.settle); err != nil {
				return err
			}
			c.Idle, err = e.measure(ctx, "idle", nil, false, t)
			if err != nil {
				return err
			}
			c.Changes, err = e.measure(ctx, "changes", nil, true, t)
			if err != nil {
				return err
			}
			rep.cells = append(rep.cells, c)
		}
	}
	// Connections a proxy is planned to need, raised by what is measured.
	perProxy := map[string]float64{"notify": 2, "poll": 1, "replica": 2, "replica-poll": 1, "replica-split": 2}
	triggers := false
	for i, mode := range o.modes {
		var err error
		spec := modeSpecs[mode]
		switch {
		case spec.triggers && (i == 0 || !triggers):
			var tables []string
			if tables, err = e.db.installTriggers(ctx, e.triggers); err == nil {
				e.logf("triggers of notify.py installed on %s", strings.Join(tables, ", "))
				rep.triggerTables = tables
			}
		case !spec.triggers && (i == 0 || triggers):
			err = e.uninstall(ctx)
		}
		triggers = spec.triggers
		if err != nil {
			return err
		}
		for _, n := range o.sizes {
			c := e.cell(ctx, mode, n, perProxy[mode], rng)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if c.Idle.Seconds > 0 && c.N > 0 {
				perProxy[mode] = max(perProxy[mode], float64(c.Idle.ConnsMax)/float64(c.N))
			}
			rep.cells = append(rep.cells, c)
			e.logf("%s", c.summary())
		}
	}
	rep.finished = time.Now()
	text := rep.markdown()
	fmt.Print(text)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) uninstall(ctx context.Context) error {
	return e.db.uninstallTriggers(ctx, e.triggers)
}

// newTarget starts the relay to the server of u and makes the proxies'
// URL of the fleet's database through it.
func newTarget(name string, obs *observer, u *url.URL) (*target, error) {
	dial, err := dialerFor(u)
	if err != nil {
		return nil, err
	}
	w, err := newWireCounter(dial)
	if err != nil {
		return nil, err
	}
	pu := *u
	pu.Host = w.addr()
	q := pu.Query()
	q.Del("host")
	q.Del("application_name")
	q.Set("sslmode", "disable")
	pu.RawQuery = q.Encode()
	return &target{name: name, obs: obs, wire: w, proxyDSN: pu.String()}, nil
}

// cell runs one fleet: start, settle, idle window, changing window, delays.
func (e *env) cell(ctx context.Context, mode string, n int, perProxy float64, rng *rand.Rand) (c cellResult) {
	spec := modeSpecs[mode]
	t := e.primary
	if spec.standby {
		t = e.standby
	}
	c = cellResult{Mode: mode, N: n, Server: t.name}
	a, err := t.obs.activity(ctx)
	if err != nil {
		c.Skipped = "pg_stat_activity: " + err.Error()
		return c
	}
	usable := a.MaxConns - a.Reserved
	need := int(float64(n)*perProxy + 0.999)
	inUse := a.Others + a.Ours + a.Harness + 1 // and the harness's connection to the maintenance database
	c.FreeBefore = usable - inUse
	if inUse+need+e.o.reserve > usable {
		c.Skipped = fmt.Sprintf("would need about %d connections (%.0f a proxy); the server allows %d (max_connections %d − %d reserved), %d are in use, and %d must stay free for its other users",
			need, perProxy, usable, a.MaxConns, a.Reserved, inUse, e.o.reserve)
		e.logf("%s N=%d skipped: %s", mode, n, c.Skipped)
		return c
	}
	e.logf("%s N=%d: starting", mode, n)
	args := []string{"--database", t.proxyDSN, "--upstream", e.upstream, "--secret-key", fleetSecretKey,
		"--notify=" + strconv.FormatBool(spec.notify), "--log-format", "json", "--log-level", "info"}
	if e.o.pollInterval != "" {
		args = append(args, "--poll-interval", e.o.pollInterval)
	}
	if e.o.fullReload != "" {
		args = append(args, "--full-reload-interval", e.o.fullReload)
	}
	if spec.split {
		args = append(args, "--notify-database", e.primary.proxyDSN)
	}
	fl := &fleet{}
	defer func() {
		var wg sync.WaitGroup
		for _, p := range fl.proxies {
			wg.Go(func() { e.reg.stop(p) })
		}
		wg.Wait()
		for _, p := range fl.proxies {
			p.mu.Lock()
			for _, w := range p.warnings {
				if !slices.Contains(c.Warnings, w) {
					c.Warnings = append(c.Warnings, w)
				}
			}
			p.mu.Unlock()
		}
		e.waitDisconnected(ctx, t)
	}()
	// Pods of a real fleet start at unrelated times, so their poll timers
	// have unrelated phases (flagproxy's own jitter spreads them over a
	// tenth of the interval only): start the proxies at random moments
	// within one poll interval.
	interval := time.Second
	if e.o.pollInterval != "" {
		interval, _ = time.ParseDuration(e.o.pollInterval)
	}
	offsets := make([]time.Duration, n)
	for i := range offsets {
		offsets[i] = time.Duration(rng.Int64N(int64(interval)))
	}
	slices.Sort(offsets)
	start := time.Now()
	for i := range n {
		if err := sleepCtx(ctx, time.Until(start.Add(offsets[i]))); err != nil {
			return c
		}
		p, err := e.reg.start(e.bin, i, args, e.sawVersion)
		if err != nil {
			c.Skipped = err.Error()
			return c
		}
		fl.proxies = append(fl.proxies, p)
	}
	for attempt := 1; ; attempt++ {
		err := fl.waitReady(ctx, e.admin, 60*time.Second)
		if err == nil {
			break
		}
		// A proxy whose port was taken between the check and its bind
		// is started again on other ports.
		restarted := false
		for i, p := range fl.proxies {
			if attempt < 4 && p.bindFailed() {
				e.reg.stop(p)
				np, err := e.reg.start(e.bin, p.id, args, e.sawVersion)
				if err != nil {
					c.Skipped = err.Error()
					return c
				}
				fl.proxies[i] = np
				restarted = true
			}
		}
		if !restarted {
			c.Skipped = "fleet not ready: " + firstLines(err.Error(), 12)
			return c
		}
		e.logf("%s N=%d: restarted proxies whose port was taken", mode, n)
	}
	c.ReadySeconds = time.Since(start).Seconds()
	if spec.notify && (!spec.standby || spec.split) {
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if int(fl.metrics(ctx, e.admin)["flagproxy_snapshot_notify_active"]) == n {
				break
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}
	c.NotifyActive = int(fl.metrics(ctx, e.admin)["flagproxy_snapshot_notify_active"])
	e.vlogf("%s N=%d ready in %.1fs, notify active on %d; settling %v", mode, n, c.ReadySeconds, c.NotifyActive, e.o.settle)
	if err := sleepCtx(ctx, e.o.settle); err != nil {
		return c
	}
	if c.Idle, err = e.measure(ctx, "idle", fl, false, t); err != nil {
		c.Skipped = "idle window: " + err.Error()
		return c
	}
	if c.Changes, err = e.measure(ctx, "changes", fl, true, t); err != nil {
		c.Skipped = "changing window: " + err.Error()
		return c
	}
	if err := e.converge(ctx, fl, 10*time.Second); err != nil {
		c.Skipped = err.Error()
		return c
	}
	c.Delay, err = e.delays(ctx, fl, rng)
	if err != nil {
		c.Skipped = "delays: " + err.Error()
	}
	c.NotifyActiveEnd = int(fl.metrics(ctx, e.admin)["flagproxy_snapshot_notify_active"])
	return c
}

// sawVersion records a snapshot version a proxy logged.
func (e *env) sawVersion(v string, at time.Time) {
	e.versionsMu.Lock()
	if _, ok := e.versions[v]; !ok {
		e.versions[v] = at
	}
	e.versionsMu.Unlock()
}

func (e *env) knownVersions() map[string]bool {
	e.versionsMu.Lock()
	defer e.versionsMu.Unlock()
	out := make(map[string]bool, len(e.versions))
	for v := range e.versions {
		out[v] = true
	}
	return out
}

// converge waits until every proxy serves the same version.
func (e *env) converge(ctx context.Context, fl *fleet, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		vs := fl.versions(ctx, e.admin)
		same := vs[0] != ""
		for _, v := range vs {
			same = same && v == vs[0]
		}
		if same {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the proxies did not agree on one snapshot version within %v: %v", limit, vs)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitDisconnected waits until the fleet's connections are gone from
// pg_stat_activity, so that the next cell starts from a clean count.
func (e *env) waitDisconnected(ctx context.Context, t *target) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	for {
		a, err := t.obs.activity(ctx)
		if err != nil || a.Ours == 0 {
			return
		}
		if sleepCtx(ctx, 200*time.Millisecond) != nil {
			return
		}
	}
}

// windowResult is one measurement window.
type windowResult struct {
	Phase         string
	Seconds       float64
	Stats         dbStats      // pg_stat_database delta
	Wire          wireSnapshot // what the proxies sent, delta
	Writes        int64        // the harness's own commits in the window
	WritesHere    int64        // of them, those counted by the server observed (the primary)
	ConnsMedian   int
	ConnsMax      int
	ListenMedian  int
	ActiveMax     int
	OthersMax     int     // connections of the server's other users
	FreeMin       int     // least free connections seen
	BackendCPU    float64 // seconds of CPU of the database's backends
	Backends      int     // backends whose CPU was read
	ProxyCPU      float64 // seconds of CPU of all proxies
	ProxyRSS      int64   // mean VmRSS of a proxy at the end
	MachineBusy   float64 // share of all CPUs busy
	Load1         string  // /proc/loadavg at the start
	Loads         float64 // snapshot loads of the fleet (flagproxy's metrics)
	Notifications float64
	Checks        float64 // change checks, any result
	Aborted       string
}

// measure runs one window of e.o.window: with writes, the change flag is
// updated e.o.rate times a second.
func (e *env) measure(ctx context.Context, phase string, fl *fleet, writes bool, t *target) (windowResult, error) {
	w := windowResult{Phase: phase, Load1: loadAvg()}
	var m0 map[string]float64
	if fl != nil {
		m0 = fl.metrics(ctx, e.admin)
	}
	proxyTicks := func() int64 {
		var t int64
		if fl != nil {
			for _, p := range fl.proxies {
				v, _ := cpuTicks(p.cmd.Process.Pid)
				t += v
			}
		}
		return t
	}
	// Backend CPU: ticks at first sight and last sight of each backend.
	first, last := map[int]int64{}, map[int]int64{}
	a0, err := t.obs.activity(ctx)
	if err != nil {
		return w, err
	}
	seeBackends := func(pids []int, initial bool) {
		if !t.obs.local {
			return
		}
		for _, pid := range pids {
			t, ok := cpuNanos(pid)
			if !ok {
				continue
			}
			if _, seen := first[pid]; !seen {
				if initial {
					first[pid] = t
				} else {
					first[pid] = 0 // started within the window
				}
			}
			last[pid] = t
		}
	}
	seeBackends(a0.OurPIDs, true)
	s0, err := t.obs.stats(ctx)
	if err != nil {
		return w, err
	}
	wire0 := t.wire.snapshot()
	pt0 := proxyTicks()
	busy0, total0 := machineCPU()
	start := time.Now()

	var writeCount atomic.Int64
	var wg sync.WaitGroup
	wctx, stopWrites := context.WithCancel(ctx)
	if writes {
		wg.Go(func() {
			t := time.NewTicker(time.Duration(float64(time.Second) / e.o.rate))
			defer t.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case <-t.C:
				}
				if err := e.db.change(wctx, int(e.seq.Add(1))); err == nil {
					writeCount.Add(1)
				} else if wctx.Err() == nil {
					e.logf("write: %v", err)
				}
			}
		})
	}
	var conns, listens []int
	w.FreeMin = 1 << 30
	tick := time.NewTicker(time.Second)
	end := time.NewTimer(e.o.window)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end.C:
			break loop
		case <-tick.C:
			a, err := t.obs.activity(ctx)
			if err != nil {
				continue
			}
			seeBackends(a.OurPIDs, false)
			conns = append(conns, a.Ours)
			listens = append(listens, a.Listen)
			w.ConnsMax = max(w.ConnsMax, a.Ours)
			w.ActiveMax = max(w.ActiveMax, a.Active)
			w.OthersMax = max(w.OthersMax, a.Others)
			free := a.MaxConns - a.Reserved - a.Others - a.Ours - a.Harness - 1
			w.FreeMin = min(w.FreeMin, free)
			if e.o.server == "shared" && free < e.o.reserve/2 && fl != nil {
				w.Aborted = fmt.Sprintf("only %d connections left free on the shared server", free)
				break loop
			}
		}
	}
	tick.Stop()
	end.Stop()
	stopWrites()
	wg.Wait()
	if ctx.Err() != nil {
		return w, ctx.Err()
	}
	w.Seconds = time.Since(start).Seconds()
	busy1, total1 := machineCPU()
	if total1 > total0 {
		w.MachineBusy = float64(busy1-busy0) / float64(total1-total0)
	}
	w.ProxyCPU = float64(proxyTicks()-pt0) / clockTicks
	w.Wire = t.wire.snapshot().sub(wire0)
	s1, err := t.obs.stats(ctx)
	if err != nil {
		return w, err
	}
	w.Stats = s1.sub(s0)
	a1, err := t.obs.activity(ctx)
	if err == nil {
		seeBackends(a1.OurPIDs, false)
	}
	for pid, t := range last {
		w.BackendCPU += float64(t-first[pid]) / float64(time.Second)
	}
	w.Backends = len(last)
	w.Writes = writeCount.Load()
	if t.obs.primary {
		w.WritesHere = w.Writes
	}
	w.ConnsMedian = median(conns)
	w.ListenMedian = median(listens)
	if fl != nil {
		m1 := fl.metrics(ctx, e.admin)
		w.Loads = m1["flagproxy_snapshot_loads_total"] - m0["flagproxy_snapshot_loads_total"]
		w.Notifications = m1["flagproxy_snapshot_notifications_total"] - m0["flagproxy_snapshot_notifications_total"]
		for _, r := range []string{"unchanged", "changed", "error"} {
			k := `flagproxy_snapshot_change_checks_total{result="` + r + `"}`
			w.Checks += m1[k] - m0[k]
		}
		var rss int64
		for _, p := range fl.proxies {
			rss += rssBytes(p.cmd.Process.Pid)
		}
		w.ProxyRSS = rss / int64(len(fl.proxies))
	}
	if w.Aborted != "" {
		return w, errors.New(w.Aborted)
	}
	return w, nil
}

// delayResult is the delays of one fleet's changes.
type delayResult struct {
	// Per change: when the last proxy, and the median proxy, first showed
	// the new version in a header (probe), and logged the new snapshot.
	LastHeader, MedianHeader, LastLog, MedianLog []time.Duration
	Commit                                       []time.Duration // the UPDATE's own time
	Missed                                       int             // proxy-changes not seen within -change-timeout
	Inconsistent                                 int             // changes after which proxies showed different versions
	Probes                                       int64
}

// delays commits o.changes changes, one at a time, and measures for each
// how long every proxy takes to show it.
func (e *env) delays(ctx context.Context, fl *fleet, rng *rand.Rand) (delayResult, error) {
	var d delayResult
	n := len(fl.proxies)
	for i := range e.o.changes {
		gap := e.o.gapMin + time.Duration(rng.Int64N(int64(e.o.gapMax-e.o.gapMin)+1))
		if err := sleepCtx(ctx, gap); err != nil {
			return d, err
		}
		old := e.knownVersions()
		seen := make([]time.Duration, n)
		vers := make([]string, n)
		var probes atomic.Int64
		t0 := time.Now()
		if err := e.db.change(ctx, int(e.seq.Add(1))); err != nil {
			return d, err
		}
		d.Commit = append(d.Commit, time.Since(t0))
		deadline := t0.Add(e.o.changeWait)
		var version string
		if e.o.probe == "header" {
			var wg sync.WaitGroup
			for j, p := range fl.proxies {
				wg.Go(func() {
					wait := 5 * time.Millisecond
					for {
						code, body, err := get(ctx, e.probe, "http://"+p.listen+"/fleet-probe")
						at := time.Now()
						probes.Add(1)
						if err == nil && code == 200 && len(body) > 0 && !old[string(body)] {
							seen[j], vers[j] = at.Sub(t0), string(body)
							return
						}
						if at.After(deadline) || ctx.Err() != nil {
							seen[j] = -1
							return
						}
						time.Sleep(wait)
						wait = min(wait*5/4, 50*time.Millisecond)
					}
				})
			}
			wg.Wait()
			if ctx.Err() != nil {
				return d, ctx.Err()
			}
			d.Probes += probes.Load()
			var header []time.Duration
			for j := range n {
				if seen[j] < 0 {
					d.Missed++
					header = append(header, e.o.changeWait)
					continue
				}
				header = append(header, seen[j])
				if version == "" {
					version = vers[j]
				} else if vers[j] != version {
					d.Inconsistent++
				}
			}
			slices.Sort(header)
			d.LastHeader = append(d.LastHeader, header[n-1])
			d.MedianHeader = append(d.MedianHeader, header[(n-1)/2])
		} else {
			// No requests: wait for every proxy's log to name a new
			// version (a look at memory every 2 ms).
			for {
				got := 0
				for j, p := range fl.proxies {
					if vers[j] == "" {
						vers[j] = p.newVersion(old)
					}
					if vers[j] != "" {
						got++
					}
				}
				if got == n || time.Now().After(deadline) {
					break
				}
				if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
					return d, err
				}
			}
			for j := range n {
				switch {
				case vers[j] == "":
					d.Missed++
				case version == "":
					version = vers[j]
				case vers[j] != version:
					d.Inconsistent++
				}
			}
		}
		// The log line follows the publication by microseconds; give
		// stragglers a moment.
		var logged []time.Duration
		limit := time.Now().Add(time.Second)
		for _, p := range fl.proxies {
			for {
				if at, ok := p.loadedAt(version); ok {
					logged = append(logged, at.Sub(t0))
					break
				}
				if time.Now().After(limit) {
					logged = append(logged, e.o.changeWait)
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		slices.Sort(logged)
		d.LastLog = append(d.LastLog, logged[n-1])
		d.MedianLog = append(d.MedianLog, logged[(n-1)/2])
		e.vlogf("change %d: last proxy %v, median proxy %v (log)", i+1,
			logged[n-1].Round(time.Millisecond), logged[(n-1)/2].Round(time.Millisecond))
	}
	return d, nil
}

// --- the upstream ---

type upstream struct {
	Addr string
	srv  *http.Server
}

// startUpstream serves the fleet's shared upstream: it answers every
// request with the snapshot version of the X-Flagproxy-Flags header it got
// (the plain header, or the pointer object of a compressed one: both carry
// "version").
func startUpstream() (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h struct {
			Version string `json:"version"`
		}
		json.Unmarshal([]byte(r.Header.Get("X-Flagproxy-Flags")), &h)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, h.Version)
	})}
	go srv.Serve(ln)
	return &upstream{Addr: ln.Addr().String(), srv: srv}, nil
}

func (u *upstream) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	u.srv.Shutdown(ctx)
}

// dialerFor reaches the server of u: host and port, or a socket directory
// given as ?host=/dir.
func dialerFor(u *url.URL) (func(context.Context) (net.Conn, error), error) {
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	var d net.Dialer
	if h := u.Query().Get("host"); strings.HasPrefix(h, "/") {
		path := filepath.Join(h, ".s.PGSQL."+port)
		return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "unix", path) }, nil
	}
	host := u.Hostname()
	if host == "" {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, port)
	return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }, nil
}

// --- small helpers ---

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func median(v []int) int {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "\n")
}

// gitDescribe names the commit measured, and whether the tree had local
// changes (read-only git commands: --no-optional-locks keeps status from
// refreshing the index).
func gitDescribe(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	s := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "--no-optional-locks", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		s += " with local changes"
	}
	return s
}
