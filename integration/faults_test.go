//go:build integration

package integration

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The fault tests (issue #13, item 6): faults of the database, of the
// upstream and of flagproxy itself, each under a bounded load on loopback in
// which every request is counted (sent, answered by status, failed) and
// checked against a timeline of the fault, and against flagproxy's own
// flagproxy_requests_total.
//
// They never touch the shared PostgreSQL: the database faults run on a
// throwaway cluster of their own (initdb into a temporary directory,
// pg_ctl on a free port, trust authentication), stopped and removed when the
// test ends, also when it fails. The tests run one after another, not in
// parallel: their assertions are about timing.
//
// Prerequisites, as for the other end-to-end tests (missing: skip, or fail
// under CI=true): Django with psycopg2 and gunicorn (/usr/bin/python3), and
// for the database faults PostgreSQL's initdb and pg_ctl (in PATH or in
// Debian's /usr/lib/postgresql/<version>/bin); as root, a "postgres" user
// to run them as.

const (
	faultPollInterval = 200 * time.Millisecond
	faultIdentityTTL  = time.Second
	faultStaleAfter   = 2 * time.Second
	// faultClientTimeout bounds one request of the load; a request that
	// reaches it is a failure ("no hang").
	faultClientTimeout = 10 * time.Second
	// faultMaxLatency is the slowest any request of the load may be.
	faultMaxLatency = 5 * time.Second
	// faultLoadLimit is the longest any load runs, whatever happens.
	faultLoadLimit = 40 * time.Second
	// faultShutdownGrace is flagproxy's (cmd/flagproxy.DefaultShutdownGrace).
	faultShutdownGrace = 10 * time.Second
)

// TestFaultPostgresRestartUnderLoad stops the site's PostgreSQL for 5 s in
// the middle of 15 s of load through flagproxy in front of gunicorn, and
// starts it again.
//
// The load: anonymous visitors on /echo/, and a logged-in user (alice, the
// only one a waffle flag is on for) on /meta/ and on /echo/. /meta/ and an
// anonymous /echo/ never touch Django's database, so they must all answer
// 200 during the outage; alice's /echo/ loads her session and user from the
// database, so Django itself answers 500 while it is down: those 500s must
// be Django's page, inside the outage, and flagproxy must never answer 502
// or 504 (it adds no failure of its own).
//
// The header must go "ok" → "stale" → "ok" (stale only from --stale-after
// after the stop, ok again within a poll or two of the start), alice keeps
// her identity and her flag throughout, marked "identity":"stale" once her
// cached identity is older than --identity-cache-ttl and the database
// cannot re-check it, and unmarked again after the start.
func TestFaultPostgresRestartUnderLoad(t *testing.T) {
	requireDjango(t, "psycopg2", "gunicorn")
	pg := newFaultCluster(t)
	dbURL := pg.URL("site")
	manage(t, dbURL, "migrate", "--noinput", "-v", "0")
	var ids map[string]string
	out := manage(t, dbURL, "shell", "-c", faultSeedUserPy)
	if err := json.Unmarshal([]byte(lastLine(out)), &ids); err != nil {
		t.Fatalf("seed output %q: %v", out, err)
	}
	alice := ids["alice"]

	dj := startFaultGunicorn(t, dbURL)
	requireMetaView(t, dj.URL())
	proxyURL, adminURL, _ := startFaultFlagproxy(t, "--upstream", dj.URL(), "--database", dbURL,
		"--django-settings", settingsFile(t, ""), "--poll-interval", faultPollInterval.String(),
		"--identity-cache-ttl", faultIdentityTTL.String(), "--stale-after", faultStaleAfter.String())
	session := loginThrough(t, proxyURL, "alice")

	targets := []faultTarget{
		{class: "anonymous /echo/", path: "/echo/", clients: 3},
		{class: "alice /meta/", path: "/meta/", session: session, clients: 3},
		{class: "alice /echo/", path: "/echo/", session: session, clients: 2},
	}
	before := faultMetrics(t, adminURL)
	load := startFaultLoad(t, proxyURL, targets, 40*time.Millisecond, 1000)
	time.Sleep(4 * time.Second)
	atStop := faultMetrics(t, adminURL)
	stopBegin := time.Now()
	pg.Stop(t)
	stopped := time.Now()
	time.Sleep(5*time.Second - stopped.Sub(stopBegin))
	atStart := faultMetrics(t, adminURL)
	startBegin := time.Now()
	pg.Start(t)
	ready := time.Now()
	time.Sleep(time.Until(load.began.Add(15 * time.Second)))
	rs := load.finish()
	after := faultMetrics(t, adminURL)

	rel := load.rel
	t.Logf("timeline: stop %v (stopped after %v), start %v (ready after %v), end %v",
		rel(stopBegin), stopped.Sub(stopBegin).Round(time.Millisecond), rel(startBegin),
		ready.Sub(startBegin).Round(time.Millisecond), rel(time.Now()))
	faultReport(t, rs)
	checkFaultAccounting(t, rs, before, after)
	// alice's /echo/ needs Django's own database: while it is down, a sync
	// worker can hold one of her requests for seconds (4.955 s in CI once,
	// 5.28 s another time on a loaded machine; up to 4.7 s in quiet runs
	// before and after 4c9622a), which measures Django, not flagproxy. Her
	// /meta/ goes through the same identity lookups without Django's wait
	// and keeps the bound; her /echo/ across the outage must only not hang.
	djangoWaits := func(r faultResult) bool {
		return r.target.class == "alice /echo/" && r.overlaps(stopBegin, ready.Add(time.Second))
	}
	checkFaultLatency(t, rs, faultMaxLatency, djangoWaits)
	for _, phase := range []struct {
		name     string
		from, to faultMetricSet
	}{{"before the stop", before, atStop}, {"database down", atStop, atStart}, {"after the start", atStart, after}} {
		d := func(series string) float64 { return phase.to.sum(series) - phase.from.sum(series) }
		t.Logf("identity cache, %s: %v hits, %v misses (a request waited for a lookup), %v served stale, %v sessions looked up in %v queries",
			phase.name, d(`flagproxy_identity_cache_hits_total{result="accepted"}`), d("flagproxy_identity_cache_misses_total"),
			d("flagproxy_identity_stale_total"), d("flagproxy_identity_lookups_total"), d("flagproxy_identity_queries_total"))
	}

	// Statuses: no failure of flagproxy's own.
	outage := func(r faultResult) bool { return r.overlaps(stopBegin, ready.Add(time.Second)) }
	for _, r := range rs {
		switch {
		case r.err != nil:
		case r.status == http.StatusBadGateway || r.status == http.StatusGatewayTimeout:
			t.Errorf("%s: flagproxy answered %d %q", r, r.status, r.body)
		case r.status == http.StatusOK:
		case r.target.class == "alice /echo/" && r.status == http.StatusInternalServerError:
			if !strings.HasPrefix(r.ctype, "text/html") || !strings.Contains(r.body, "Server Error (500)") {
				t.Errorf("%s: a 500 that is not Django's error page: %s %q", r, r.ctype, r.body)
			}
			if !outage(r) {
				t.Errorf("%s: Django answered 500 outside the outage", r)
			}
		default:
			t.Errorf("%s: status %d %q", r, r.status, r.body)
		}
	}
	if n := countFault(rs, func(r faultResult) bool { return r.target.class == "alice /echo/" && r.status == 500 }); n == 0 {
		t.Error("alice's /echo/ never got Django's 500: was the database really down?")
	} else {
		t.Logf("alice /echo/: %d answers 500 from Django during the outage (its session and user are in the database)", n)
	}

	// Flags and identity, in every response whose header Django showed.
	for _, r := range rs {
		if r.status != http.StatusOK || r.err != nil {
			continue
		}
		f := r.flags
		if f == nil {
			t.Errorf("%s: no flags header: %v", r, r.decodeErr)
			continue
		}
		logged := r.target.session != ""
		if !f.Flags["f_everyone"] || f.Flags["only_alice"] != logged {
			t.Errorf("%s: flags %v, want f_everyone on and only_alice %v", r, f.Flags, logged)
		}
		if f.State != "ok" && f.State != "stale" {
			t.Errorf("%s: state %q", r, f.State)
		}
		if f.Identity != "" && (f.Identity != "stale" || !logged) {
			t.Errorf("%s: identity %q", r, f.Identity)
		}
		if r.target.path == "/echo/" {
			if want := map[bool]string{true: alice}[logged]; r.user != want {
				t.Errorf("%s: Django saw user %q, want %q", r, r.user, want)
			}
		}
		// The flag state: stale from stale-after past the last load before
		// the stop (at most a poll before it), ok a poll after the start.
		staleFrom := stopBegin.Add(faultStaleAfter - faultPollInterval - 300*time.Millisecond)
		switch {
		case f.State == "stale" && r.end.Before(staleFrom):
			t.Errorf("%s: stale %v before the stop plus --stale-after", r, staleFrom.Sub(r.end))
		case f.State == "stale" && r.start.After(ready.Add(faultPollInterval+time.Second)):
			t.Errorf("%s: still stale %v after the database was back", r, r.start.Sub(ready))
		case f.State == "ok" && r.start.After(stopBegin.Add(faultStaleAfter+time.Second)) && r.end.Before(startBegin):
			t.Errorf("%s: ok in the middle of the outage", r)
		}
		// The identity: stale only during the outage (and until the next
		// re-check after it: a session served stale is retried at most once
		// a second), and always once the TTL (and a re-check) passed in it.
		switch {
		case f.Identity == "stale" && !r.overlaps(stopBegin, ready.Add(3*time.Second)):
			t.Errorf("%s: identity stale outside the outage", r)
		case logged && f.Identity == "" && r.start.After(stopBegin.Add(faultIdentityTTL+1500*time.Millisecond)) && r.end.Before(startBegin):
			t.Errorf("%s: identity not marked stale %v into the outage", r, r.start.Sub(stopBegin))
		}
	}
	state := func(r faultResult) string { return r.flags.State }
	identity := func(r faultResult) string { return map[string]string{"": "fresh", "stale": "stale"}[r.flags.Identity] }
	checkFaultSequences(t, rs, "anonymous /echo/", "state", state, "ok", "stale", "ok")
	checkFaultSequences(t, rs, "alice /meta/", "state", state, "ok", "stale", "ok")
	checkFaultSequences(t, rs, "alice /meta/", "identity", identity, "fresh", "stale", "fresh")
	logFaultTransitions(t, load, rs, "alice /meta/")
	for _, phase := range []struct {
		name     string
		from, to time.Time
	}{
		{"before the stop", load.began, stopBegin},
		{"database down", stopped, startBegin},
		{"after the start", ready, time.Now()},
	} {
		for _, tg := range targets {
			if phase.name == "database down" && tg.class == "alice /echo/" {
				// Django itself needs the database for this view: a sync
				// worker can spend seconds on one request while it is down
				// (4.955 s once in CI), so the count says nothing of flagproxy.
				continue
			}
			n := countFault(rs, func(r faultResult) bool {
				return r.target.class == tg.class && !r.start.Before(phase.from) && r.end.Before(phase.to)
			})
			if n < 10 {
				t.Errorf("%s: %d requests of %s, want a load of at least 10", phase.name, n, tg.class)
			}
		}
	}
}

// faultLongOutage is how long TestFaultIdentityThroughLongOutage keeps the
// database down: the issue's "a logged-in user keeps their flags through a
// 60 s database outage".
const faultLongOutage = 60 * time.Second

// TestFaultIdentityThroughLongOutage keeps the site's PostgreSQL stopped for
// a minute, sixty identity TTLs, while a logged-in user (alice, the only one
// the flag only_alice is on for) and an anonymous visitor ask for /meta/, a
// view that needs no database, twice a second. Every answer is 200 and
// carries the right flags: alice keeps only_alice throughout, marked
// "identity":"stale" in the outage past her TTL and fresh again after it; the
// anonymous visitor never gets it. The load is light and the test runs in
// parallel with the others: it mostly waits.
func TestFaultIdentityThroughLongOutage(t *testing.T) {
	requireDjango(t, "psycopg2", "gunicorn")
	t.Parallel()
	pg := newFaultCluster(t)
	dbURL := pg.URL("site")
	manage(t, dbURL, "migrate", "--noinput", "-v", "0")
	manage(t, dbURL, "shell", "-c", faultSeedUserPy)
	dj := startFaultGunicorn(t, dbURL)
	requireMetaView(t, dj.URL())
	proxyURL, _, _ := startFaultFlagproxy(t, "--upstream", dj.URL(), "--database", dbURL,
		"--django-settings", settingsFile(t, ""), "--poll-interval", faultPollInterval.String(),
		"--identity-cache-ttl", faultIdentityTTL.String(), "--stale-after", faultStaleAfter.String())
	session := loginThrough(t, proxyURL, "alice")

	targets := []faultTarget{
		{class: "alice /meta/", path: "/meta/", session: session, clients: 1},
		{class: "anonymous /meta/", path: "/meta/", clients: 1},
	}
	const pause = 500 * time.Millisecond
	load := startFaultLoadFor(t, proxyURL, targets, pause, 1000, faultLongOutage+30*time.Second)
	time.Sleep(3 * time.Second)
	stopBegin := time.Now()
	pg.Stop(t)
	time.Sleep(faultLongOutage - time.Since(stopBegin))
	startBegin := time.Now()
	pg.Start(t)
	ready := time.Now()
	time.Sleep(5 * time.Second)
	rs := load.finish()
	t.Logf("outage %v; %d requests", startBegin.Sub(stopBegin).Round(time.Second), len(rs))
	for _, r := range rs {
		if r.took() > time.Second {
			t.Logf("slow: %s", r)
		}
	}

	var inOutage int
	for _, r := range rs {
		if r.err != nil || r.status != http.StatusOK || r.flags == nil {
			t.Errorf("%s: status %d, error %v, header error %v", r, r.status, r.err, r.decodeErr)
			continue
		}
		logged := r.target.session != ""
		if f := r.flags; !f.Flags["f_everyone"] || f.Flags["only_alice"] != logged {
			t.Errorf("%s: flags %v, want f_everyone on and only_alice %v", r, f.Flags, logged)
		}
		deep := r.start.After(stopBegin.Add(faultIdentityTTL+1500*time.Millisecond)) && r.end.Before(startBegin)
		switch {
		case logged && deep && r.flags.Identity != "stale":
			t.Errorf("%s: identity %q %v into the outage, want stale", r, r.flags.Identity, r.start.Sub(stopBegin))
		case !logged && r.flags.Identity != "":
			t.Errorf("%s: an anonymous visitor with identity %q", r, r.flags.Identity)
		case r.flags.Identity == "stale" && !r.overlaps(stopBegin, ready.Add(3*time.Second)):
			t.Errorf("%s: identity stale outside the outage", r)
		}
		if logged && deep {
			inOutage++
		}
	}
	if want := int(faultLongOutage/pause) / 2; inOutage < want {
		t.Errorf("alice: %d answers deep in the outage, want at least %d", inOutage, want)
	}
	identity := func(r faultResult) string { return map[string]string{"": "fresh", "stale": "stale"}[r.flags.Identity] }
	checkFaultSequences(t, rs, "alice /meta/", "identity", identity, "fresh", "stale", "fresh")
}

// TestFaultUpstreamRestart kills gunicorn (SIGKILL to its process group:
// master and workers, as a crash or an OOM kill would) under load through
// flagproxy, and starts it again on the same port 2 s later. While it is
// down flagproxy answers 502 at once (no other status, no client error, no
// hang), and 200 again once gunicorn is back.
func TestFaultUpstreamRestart(t *testing.T) {
	requireDjango(t, "gunicorn")
	db := newSQLiteSite(t)
	dj := startFaultGunicorn(t, db.URL)
	proxyURL, adminURL, _ := startFaultFlagproxy(t, "--upstream", dj.URL(), "--database", db.URL,
		"--django-settings", settingsFile(t, ""), "--upstream-timeout", "10s")

	before := faultMetrics(t, adminURL)
	load := startFaultLoad(t, proxyURL, []faultTarget{{class: "anonymous /echo/", path: "/echo/", clients: 6}}, 20*time.Millisecond, 1000)
	time.Sleep(2500 * time.Millisecond)
	killAt := time.Now()
	dj.Kill(t)
	killed := time.Now()
	time.Sleep(2 * time.Second)
	launchAt := time.Now()
	dj.Launch(t)
	upAt := time.Now()
	time.Sleep(3 * time.Second)
	rs := load.finish()
	after := faultMetrics(t, adminURL)

	rel := load.rel
	t.Logf("timeline: SIGKILL %v (gone after %v), relaunch %v, answering again %v (after %v), end %v",
		rel(killAt), killed.Sub(killAt).Round(time.Millisecond), rel(launchAt), rel(upAt),
		upAt.Sub(launchAt).Round(time.Millisecond), rel(time.Now()))
	faultReport(t, rs)
	checkFaultAccounting(t, rs, before, after)
	checkFaultLatency(t, rs, faultMaxLatency, nil)

	var down, back, gap502 int
	var slowest502 time.Duration
	for _, r := range rs {
		switch {
		case r.err != nil:
		case r.status == http.StatusBadGateway:
			slowest502 = max(slowest502, r.took())
			if !r.overlaps(killAt, upAt) {
				t.Errorf("%s: 502 while gunicorn was up", r)
			}
			if r.body != "Bad Gateway\n" || !strings.HasPrefix(r.ctype, "text/plain") {
				t.Errorf("%s: 502 body %s %q, want flagproxy's plain \"Bad Gateway\"", r, r.ctype, r.body)
			}
		case r.status != http.StatusOK:
			t.Errorf("%s: status %d %q, want only 200 and 502", r, r.status, r.body)
		}
		if !r.start.Before(killed) && r.end.Before(launchAt) {
			down++
			if r.status != http.StatusBadGateway {
				t.Errorf("%s: status %d while nothing listened on gunicorn's port, want 502", r, r.status)
			}
		}
		if r.start.After(upAt) {
			back++
			if r.status != http.StatusOK {
				t.Errorf("%s: status %d after gunicorn answered again", r, r.status)
			}
		}
		if r.status == http.StatusBadGateway {
			gap502++
		}
	}
	t.Logf("%d requests while gunicorn was gone (all must be 502), %d after it answered again (all must be 200); %d answers 502 in all, the slowest in %v",
		down, back, gap502, slowest502.Round(time.Millisecond))
	if down < 20 || back < 20 {
		t.Errorf("load too thin: %d requests while down, %d after, want at least 20 each", down, back)
	}
	// A refused connection is answered at once: no 502 waits for anything.
	if slowest502 > time.Second {
		t.Errorf("a 502 took %v, want under 1s (no hang)", slowest502)
	}
	if n := after.sum("flagproxy_upstream_errors_total") - before.sum("flagproxy_upstream_errors_total"); n != float64(gap502) {
		t.Errorf("flagproxy_upstream_errors_total grew by %v, want %d (one per 502)", n, gap502)
	}
	for _, reason := range []string{"refused", "other", "timeout", "canceled"} {
		key := `flagproxy_upstream_errors_total{reason="` + reason + `"}`
		if n := after[key] - before[key]; n > 0 {
			t.Logf("upstream errors, %s: %v", reason, n)
		}
	}
}

// TestFaultSIGTERMInFlight sends flagproxy SIGTERM while 16 requests to a
// slow upstream (a Go server in place of Django: the test site has no slow
// view; each answers after 1.5 s) are in flight: every one completes with
// 200, new connections are refused at once (proxy and admin listener), and
// flagproxy exits 0 after the last response, well within its 10 s grace.
func TestFaultSIGTERMInFlight(t *testing.T) {
	const inFlight = 16
	const slow = 1500 * time.Millisecond
	up := newFaultUpstream(t, slow)
	flagsFile := filepath.Join(t.TempDir(), "flags.json")
	if err := os.WriteFile(flagsFile, []byte(`{"format":"flagproxy-snapshot/1","data":{"sources":["waffle"],"switches":[{"name":"s_on","active":true}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	proxyURL, adminURL, proc := startFaultFlagproxy(t, "--upstream", up.URL, "--database", "file://"+flagsFile)
	exited := make(chan time.Time, 1)
	go func() { <-proc.done; exited <- time.Now() }()

	// Warm-up: the proxy answers, with the file's switch.
	warm := &http.Transport{}
	defer warm.CloseIdleConnections()
	for i := range 10 {
		r := faultGet(&http.Client{Transport: warm, Timeout: faultClientTimeout}, proxyURL, faultTarget{class: "warm-up", path: "/fast"}, 0, i)
		if r.err != nil || r.status != 200 || r.flags == nil || !r.flags.Switches["s_on"] || r.flags.State != "ok" {
			t.Fatalf("warm-up %s: %v %d %+v", r, r.err, r.status, r.flags)
		}
	}

	began := time.Now()
	results := make(chan faultResult, inFlight)
	var wg sync.WaitGroup
	for i := range inFlight {
		wg.Go(func() {
			// Each on a connection of its own, as separate visitors.
			tr := &http.Transport{DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			results <- faultGet(&http.Client{Transport: tr, Timeout: faultClientTimeout}, proxyURL,
				faultTarget{class: "slow", path: "/slow"}, i, 0)
		})
	}
	t.Cleanup(wg.Wait)
	for up.arrived.Load() < inFlight {
		if time.Since(began) > 5*time.Second {
			t.Fatalf("only %d of %d requests reached the upstream within 5s", up.arrived.Load(), inFlight)
		}
		time.Sleep(5 * time.Millisecond)
	}
	sigAt := time.Now()
	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// New connections: refused once flagproxy has closed its listeners,
	// which must happen at once, while the slow requests still run.
	var refusedAt time.Time
	accepted := 0
	for attempt := 0; time.Since(sigAt) < 2*time.Second; attempt++ {
		err := faultDial(proxyURL)
		if errors.Is(err, syscall.ECONNREFUSED) {
			refusedAt = time.Now()
			break
		}
		if err == nil {
			accepted++
		}
		time.Sleep(10 * time.Millisecond)
	}
	if refusedAt.IsZero() {
		t.Fatalf("flagproxy still accepted connections 2s after SIGTERM")
	}
	adminErr := faultDial(adminURL)

	wg.Wait()
	close(results)
	var lastEnd time.Time
	ok := 0
	for r := range results {
		lastEnd = maxFaultTime(lastEnd, r.end)
		switch {
		case r.err != nil:
			t.Errorf("in-flight request %s failed: %v", r, r.err)
		case r.status != http.StatusOK || r.flags == nil || r.flags.State != "ok" || !r.flags.Switches["s_on"]:
			t.Errorf("in-flight request %s: %d %q %+v", r, r.status, r.body, r.flags)
		default:
			ok++
		}
		if r.err == nil && r.end.Before(refusedAt) {
			t.Errorf("in-flight request %s ended before new connections were refused", r)
		}
	}
	var exitAt time.Time
	select {
	case exitAt = <-exited:
	case <-time.After(faultShutdownGrace + 5*time.Second):
		t.Fatalf("flagproxy still running %v after SIGTERM", time.Since(sigAt))
	}
	code := proc.cmd.ProcessState.ExitCode()
	afterExit := []error{faultDial(proxyURL), faultDial(adminURL)}

	t.Logf("%d requests in flight at SIGTERM (upstream saw %d, answers after %v): %d completed with 200, the last %v after SIGTERM",
		inFlight, up.arrived.Load(), slow, ok, lastEnd.Sub(sigAt).Round(time.Millisecond))
	t.Logf("new connections refused %v after SIGTERM (%d accepted before that); admin listener then: %v",
		refusedAt.Sub(sigAt).Round(time.Millisecond), accepted, adminErr)
	t.Logf("flagproxy exited with status %d %v after SIGTERM, %v after the last response",
		code, exitAt.Sub(sigAt).Round(time.Millisecond), exitAt.Sub(lastEnd).Round(time.Millisecond))
	if ok != inFlight {
		t.Errorf("%d of %d in-flight requests completed with 200", ok, inFlight)
	}
	if got := up.arrived.Load(); got != inFlight {
		t.Errorf("the upstream saw %d slow requests, want %d", got, inFlight)
	}
	if d := refusedAt.Sub(sigAt); d > 500*time.Millisecond {
		t.Errorf("new connections refused only %v after SIGTERM", d)
	}
	if !errors.Is(adminErr, syscall.ECONNREFUSED) {
		t.Errorf("admin listener after SIGTERM: %v, want connection refused", adminErr)
	}
	if code != 0 {
		t.Errorf("flagproxy exited with status %d, want 0", code)
	}
	if d := exitAt.Sub(sigAt); d >= faultShutdownGrace {
		t.Errorf("flagproxy exited %v after SIGTERM, beyond its %v grace", d, faultShutdownGrace)
	}
	if exitAt.Before(lastEnd.Add(-50 * time.Millisecond)) {
		t.Errorf("flagproxy exited %v before the last in-flight response ended", lastEnd.Sub(exitAt))
	}
	for i, err := range afterExit {
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s after exit: %v, want connection refused", []string{"proxy", "admin"}[i], err)
		}
	}
	if out := proc.out.String(); strings.Contains(out, "shutdown grace period") || !strings.Contains(out, "flagproxy stopped") {
		t.Errorf("flagproxy's log does not show a clean shutdown:\n%s", out)
	}
}

// TestFaultRestartFromSnapshotFile runs flagproxy with --snapshot-file on a
// throwaway PostgreSQL, stops it (SIGTERM), stops the database, and starts
// flagproxy again: under load, it serves the file's flags (same version,
// same decisions) with "state":"stale" and /readyz says "restored":true;
// then the database starts, and the state turns "ok" (same version) and
// "restored" goes away.
func TestFaultRestartFromSnapshotFile(t *testing.T) {
	requireDjango(t, "psycopg2")
	pg := newFaultCluster(t)
	dbURL := pg.URL("site")
	manage(t, dbURL, "migrate", "--noinput", "-v", "0")
	manage(t, dbURL, "shell", "-c", faultSeedFlagsPy)
	up := newFaultUpstream(t, 0)
	snapFile := filepath.Join(t.TempDir(), "snapshot.json")
	args := []string{"--upstream", up.URL, "--database", dbURL, "--django-settings", settingsFile(t, ""),
		"--snapshot-file", snapFile, "--poll-interval", faultPollInterval.String(), "--stale-after", faultStaleAfter.String()}
	wantFlags := map[string]bool{"f_everyone": true, "f_nobody": false}
	target := []faultTarget{{class: "anonymous", path: "/", clients: 4}}
	checkDecisions := func(r faultResult) {
		if r.err != nil || r.status != http.StatusOK || r.flags == nil {
			t.Errorf("%s: %v %d %q %v", r, r.err, r.status, r.body, r.decodeErr)
			return
		}
		for name, want := range wantFlags {
			if got, ok := r.flags.Flags[name]; !ok || got != want {
				t.Errorf("%s: %s = %v (present %v), want %v", r, name, got, ok, want)
			}
		}
		if !r.flags.Switches["s_on"] {
			t.Errorf("%s: switch s_on off", r)
		}
	}

	// 1. flagproxy on a working database writes the file.
	proxy1, admin1, proc1 := startFaultFlagproxy(t, args...)
	var file struct {
		Format   string `json:"format"`
		Version  string `json:"version"`
		LoadedAt string `json:"loaded_at"`
	}
	for began := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(snapFile); err == nil && json.Unmarshal(b, &file) == nil {
			break
		}
		if time.Since(began) > 5*time.Second {
			t.Fatalf("no snapshot file %s 5s after flagproxy was ready", snapFile)
		}
	}
	if file.Format != "flagproxy-snapshot/1" || file.Version == "" || file.LoadedAt == "" {
		t.Fatalf("snapshot file: format %q, version %q, loaded_at %q", file.Format, file.Version, file.LoadedAt)
	}
	if rd := faultReadyz(t, admin1); rd.Version != file.Version || rd.Restored {
		t.Fatalf("first flagproxy: /readyz %+v, want version %s from the database", rd, file.Version)
	}
	load1 := startFaultLoad(t, proxy1, target, 20*time.Millisecond, 200)
	time.Sleep(1500 * time.Millisecond)
	rs1 := load1.finish()
	faultReport(t, rs1)
	for _, r := range rs1 {
		checkDecisions(r)
		if r.flags != nil && (r.flags.State != "ok" || r.flags.Version != file.Version) {
			t.Errorf("%s: state %q version %q, want ok %s", r, r.flags.State, r.flags.Version, file.Version)
		}
	}
	stopAt := time.Now()
	if err := proc1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-proc1.done:
	case <-time.After(faultShutdownGrace + 5*time.Second):
		t.Fatal("the first flagproxy did not exit after SIGTERM")
	}
	if code := proc1.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the first flagproxy exited with status %d", code)
	}
	t.Logf("first flagproxy: exit 0 %v after SIGTERM", time.Since(stopAt).Round(time.Millisecond))

	// 2. The database goes down; a new flagproxy starts from the file.
	pg.Stop(t)
	restartAt := time.Now()
	proxy2, admin2, _ := startFaultFlagproxy(t, args...)
	t.Logf("second flagproxy ready %v after its start, with the database down", time.Since(restartAt).Round(time.Millisecond))
	if rd := faultReadyz(t, admin2); !rd.Restored || rd.Version != file.Version || rd.Flags != 2 || rd.Switches != 1 {
		t.Fatalf("second flagproxy, database down: /readyz %+v, want restored, version %s, 2 flags, 1 switch", rd, file.Version)
	}
	load2 := startFaultLoad(t, proxy2, target, 20*time.Millisecond, 1000)
	time.Sleep(2 * time.Second)

	// 3. The database comes back.
	startBegin := time.Now()
	pg.Start(t)
	ready := time.Now()
	time.Sleep(3 * time.Second)
	rs2 := load2.finish()
	rd := faultReadyz(t, admin2)
	m := faultMetrics(t, admin2)

	rel := load2.rel
	t.Logf("timeline of the second flagproxy: database start %v, ready %v, end %v", rel(startBegin), rel(ready), rel(time.Now()))
	faultReport(t, rs2)
	checkFaultLatency(t, rs2, faultMaxLatency, nil)
	for _, r := range rs2 {
		checkDecisions(r)
		if r.flags == nil {
			continue
		}
		if r.flags.Version != file.Version {
			t.Errorf("%s: version %q, want the file's %s", r, r.flags.Version, file.Version)
		}
		switch {
		case r.flags.State != "ok" && r.flags.State != "stale":
			t.Errorf("%s: state %q", r, r.flags.State)
		case r.flags.State == "ok" && r.end.Before(startBegin):
			t.Errorf("%s: ok while the database was down", r)
		case r.flags.State == "stale" && r.start.After(ready.Add(faultPollInterval+time.Second)):
			t.Errorf("%s: still stale %v after the database was back", r, r.start.Sub(ready))
		}
	}
	checkFaultSequences(t, rs2, "anonymous", "state", func(r faultResult) string { return r.flags.State }, "stale", "ok")
	logFaultTransitions(t, load2, rs2, "anonymous")
	if rd.Restored || rd.Version != file.Version || rd.AgeSeconds < 0 || rd.AgeSeconds > 2 {
		t.Errorf("second flagproxy, database back: /readyz %+v, want not restored, version %s, a fresh age", rd, file.Version)
	}
	if m.sum("flagproxy_snapshot_load_errors_total") == 0 {
		t.Error("the second flagproxy counted no failed load: did it ever try the stopped database?")
	}
	t.Logf("second flagproxy: %v failed loads while the database was down; /readyz at the end %+v",
		m.sum("flagproxy_snapshot_load_errors_total"), rd)
}

const faultSeedUserPy = `
import json
from django.contrib.auth.models import User
from waffle.models import Flag
alice = User.objects.create_user("alice", password="pw")
Flag.objects.create(name="only_alice", superusers=False).users.add(alice)
Flag.objects.create(name="f_everyone", everyone=True)
print(json.dumps({"alice": str(alice.pk)}))
`

const faultSeedFlagsPy = `
from waffle.models import Flag, Switch
Flag.objects.create(name="f_everyone", everyone=True)
Flag.objects.create(name="f_nobody", everyone=False)
Switch.objects.create(name="s_on", active=True)
`

// requireMetaView fails unless the test site has /meta/, which answers
// without touching the database even for a logged-in visitor.
func requireMetaView(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + "/meta/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the test site answers %d on /meta/ (meta_view in integration/django/testsite/views.py): this test needs it", resp.StatusCode)
	}
}

// --- a throwaway PostgreSQL cluster ---

// faultClusterPrefix names the temporary directories of throwaway clusters.
const faultClusterPrefix = "flagproxy-fault-pg-"

// faultCluster is a PostgreSQL cluster of a test's own, in a temporary
// directory: initdb'ed with trust authentication, listening on 127.0.0.1
// on a free port and on a socket in that directory.
type faultCluster struct {
	bin  string              // directory of initdb and pg_ctl
	cred *syscall.Credential // the user to run them as, when root
	dir  string              // everything: data, socket, log
	port int
	// hold keeps the port while the cluster is stopped, so that no other
	// listener of the (parallel) tests takes it meanwhile.
	hold net.Listener
}

// newFaultCluster creates and starts a cluster with an empty database
// "site". It is stopped (immediately) and removed when t ends, also on
// failure.
func newFaultCluster(t *testing.T) *faultCluster {
	t.Helper()
	bin := requireFaultPostgres(t)
	cred := faultPostgresUser(t)
	reapFaultClusters(t, bin, cred)
	// Not t.TempDir(): as root the cluster runs as postgres, which must be
	// able to reach its directory (t.TempDir()'s parents are 0700 root).
	dir, err := os.MkdirTemp("", faultClusterPrefix)
	if err != nil {
		t.Fatal(err)
	}
	c := &faultCluster{bin: bin, cred: cred, dir: dir}
	t.Cleanup(func() { c.remove(t) })
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	if out, err := c.run("initdb", "-D", c.data(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	_, p, _ := net.SplitHostPort(freeAddr(t))
	c.port, _ = strconv.Atoi(p)
	c.Start(t)
	db, err := sql.Open("postgres", c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE site"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Logf("throwaway PostgreSQL in %s on port %d, ready in %v", dir, c.port, time.Since(began).Round(time.Millisecond))
	return c
}

func (c *faultCluster) data() string { return filepath.Join(c.dir, "data") }

// URL is the dj-database-url of a database of the cluster.
func (c *faultCluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

// Start starts the cluster and waits until it accepts connections.
func (c *faultCluster) Start(t *testing.T) {
	t.Helper()
	if c.hold != nil {
		c.hold.Close()
		c.hold = nil
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", c.port, c.dir)
	if out, err := c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "postgres.log"), "-w", "-t", "30", "-o", opts, "start"); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, c.log())
	}
}

// Stop stops the cluster with a fast shutdown (clients are disconnected)
// and waits until it is down.
func (c *faultCluster) Stop(t *testing.T) {
	t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "-t", "30", "stop"); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s\n%s", err, out, c.log())
	}
	// Keep the port: freeAddr elsewhere could hand it to another listener
	// (it did once: the restarted flagproxy's admin listener took it).
	if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", c.port)); err == nil {
		c.hold = ln
		t.Cleanup(func() {
			if c.hold != nil {
				c.hold.Close()
			}
		})
	}
}

// remove stops the cluster if it runs and deletes its directory.
func (c *faultCluster) remove(t *testing.T) {
	if t.Failed() {
		t.Logf("PostgreSQL log of %s:\n%s", c.dir, c.log())
	}
	if _, err := os.Stat(filepath.Join(c.data(), "postmaster.pid")); err == nil {
		if out, err := c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "-t", "30", "stop"); err != nil {
			t.Errorf("pg_ctl stop at the end: %v\n%s", err, out)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		t.Errorf("remove the cluster: %v", err)
	}
}

func (c *faultCluster) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	return string(b)
}

// run runs one of PostgreSQL's programs as the cluster's user. The output
// goes to a file, not a pipe: the postmaster pg_ctl starts must not hold
// one of ours open.
func (c *faultCluster) run(prog string, args ...string) (string, error) {
	return runFaultPostgres(c.bin, c.cred, c.dir, prog, args...)
}

func runFaultPostgres(bin string, cred *syscall.Credential, dir, prog string, args ...string) (string, error) {
	out, err := os.CreateTemp("", "flagproxy-fault-pg-out-")
	if err != nil {
		return "", err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(filepath.Join(bin, prog), args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return string(b), err
}

// requireFaultPostgres returns the directory holding initdb and pg_ctl:
// from PATH, else the newest of Debian's /usr/lib/postgresql/*/bin. It
// skips without them, or fails under CI=true.
func requireFaultPostgres(t *testing.T) string {
	t.Helper()
	var dirs []string
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir))); return n }
	sort.Slice(debian, func(i, j int) bool { return version(debian[i]) > version(debian[j]) })
	for _, dir := range append(dirs, debian...) {
		if faultExecutable(filepath.Join(dir, "initdb")) && faultExecutable(filepath.Join(dir, "pg_ctl")) {
			return dir
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)")
	}
	t.Skip("PostgreSQL's initdb and pg_ctl not found (in PATH or /usr/lib/postgresql/*/bin)")
	return ""
}

func faultExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// faultPostgresUser is nil unless the tests run as root, which initdb and
// postgres refuse: then the postgres user.
func faultPostgresUser(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true, running as root, and no postgres user to run a throwaway PostgreSQL as: %v", err)
		}
		t.Skipf("running as root and no postgres user to run a throwaway PostgreSQL as: %v", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// reapFaultClusters stops and removes the clusters of earlier runs whose
// test process is gone (killed, or ended by go test's timeout, which runs
// no cleanup) and that are older than any run of these tests, so that one
// such run does not leave a postmaster behind for good.
func reapFaultClusters(t *testing.T, bin string, cred *syscall.Credential) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), faultClusterPrefix+"*"))
	for _, dir := range dirs {
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < 10*time.Minute {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			runFaultPostgres(bin, cred, dir, "pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "-t", "30", "stop")
		}
		os.RemoveAll(dir)
		t.Logf("removed the throwaway PostgreSQL of an earlier run that did not end: %s", dir)
	}
}

// --- processes ---

// faultGunicorn is the test site under gunicorn (4 sync workers) on a fixed
// address, in a process group of its own, so that it can be killed whole
// and started again on the same port.
type faultGunicorn struct {
	addr string
	env  []string
	cmd  *exec.Cmd
	done chan struct{}
	outs []*lockedBuffer // one per start
}

// startFaultGunicorn starts gunicorn on a free port and waits until it
// answers. It is stopped when t ends.
func startFaultGunicorn(t *testing.T, dbURL string) *faultGunicorn {
	t.Helper()
	g := &faultGunicorn{addr: freeAddr(t),
		env: []string{"FLAGPROXY_DJANGO_DATABASE=" + dbURL, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"}}
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			for i, out := range g.outs {
				t.Logf("output of gunicorn (start %d):\n%s", i+1, out.String())
			}
		}
	})
	g.Launch(t)
	return g
}

func (g *faultGunicorn) URL() string { return "http://" + g.addr }

// Launch starts gunicorn and waits until it answers /echo/ itself.
func (g *faultGunicorn) Launch(t *testing.T) {
	t.Helper()
	cmd := exec.Command(python, "-m", "gunicorn", "--bind", g.addr, "--workers", "4", "--timeout", "30", "testsite.wsgi")
	cmd.Dir = "django"
	cmd.Env = append(os.Environ(), g.env...)
	// Its own process group, to kill the workers with the master; and
	// killed with the test process, should that die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gunicorn: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	g.cmd, g.done, g.outs = cmd, done, append(g.outs, out)
	waitHTTP(t, g.URL()+"/echo/", 200, 30*time.Second)
}

// Kill kills master and workers at once (SIGKILL to the process group) and
// waits for the master to be gone.
func (g *faultGunicorn) Kill(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill gunicorn: %v", err)
	}
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		t.Fatal("gunicorn still running 10s after SIGKILL")
	}
}

// stop ends gunicorn gracefully (SIGTERM to the group), or kills it after
// 10 s.
func (g *faultGunicorn) stop() {
	if g.cmd == nil {
		return
	}
	pid := g.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-g.done
	}
	// Workers that outlived their master.
	syscall.Kill(-pid, syscall.SIGKILL)
}

// startFaultFlagproxy starts the flagproxy binary on free ports with args
// after "serve --listen … --admin-listen …", and waits until /readyz
// answers 200. It is interrupted when t ends, if still running.
func startFaultFlagproxy(t *testing.T, args ...string) (proxyURL, adminURL string, p *process) {
	t.Helper()
	listen, admin := freeAddr(t), freeAddr(t)
	p = start(t, "flagproxy", ".", nil, flagproxyBinary(t),
		append([]string{"serve", "--listen", listen, "--admin-listen", admin}, args...)...)
	waitHTTP(t, "http://"+admin+"/readyz", 200, 15*time.Second)
	return "http://" + listen, "http://" + admin, p
}

// faultUpstream is a Go stand-in for Django: every path answers at once
// with the X-Flagproxy-Flags header it received (as /meta/ does), except
// /slow, which answers after a delay.
type faultUpstream struct {
	URL     string
	arrived atomic.Int64 // requests to /slow
}

func newFaultUpstream(t *testing.T, slow time.Duration) *faultUpstream {
	t.Helper()
	u := &faultUpstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			u.arrived.Add(1)
			select {
			case <-time.After(slow):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"HTTP_X_FLAGPROXY_FLAGS": r.Header.Get("X-Flagproxy-Flags")})
	}))
	t.Cleanup(srv.Close)
	u.URL = srv.URL
	return u
}

// faultDial opens and closes a connection to base's host.
func faultDial(base string) error {
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
	if err == nil {
		conn.Close()
	}
	return err
}

// --- the load ---

// faultTarget is one kind of visitor: clients of its own asking for path,
// with a session cookie or none.
type faultTarget struct {
	class   string
	path    string
	session string // Django's sessionid; "" for an anonymous visitor
	clients int
}

// faultFlags is the decoded X-Flagproxy-Flags value.
type faultFlags struct {
	Flags    map[string]bool `json:"flags"`
	Switches map[string]bool `json:"switches"`
	Version  string          `json:"version"`
	State    string          `json:"state"`
	Identity string          `json:"identity"`
}

// faultResult is one request of a load.
type faultResult struct {
	target     faultTarget
	client     int // index among the target's clients
	seq        int // index among the client's requests
	start, end time.Time
	err        error  // no response
	status     int    // the response's
	ctype      string // its Content-Type
	body       string // the start of a response that is not a 200
	flags      *faultFlags
	user       string // the user Django saw (/echo/ only)
	decodeErr  error
}

func (r faultResult) String() string {
	return fmt.Sprintf("%s #%d.%d (%v, %s)", r.target.class, r.client, r.seq, r.took().Round(time.Millisecond), r.start.Format("15:04:05.000"))
}

func (r faultResult) took() time.Duration { return r.end.Sub(r.start) }

// overlaps says whether the request was under way at some time in [from, to].
func (r faultResult) overlaps(from, to time.Time) bool {
	return !r.end.Before(from) && !r.start.After(to)
}

// faultLoad runs clients that each make one request after another, pause
// apart, until finish, at most perClient requests each and for at most
// faultLoadLimit; every request is kept.
type faultLoad struct {
	began   time.Time
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	mu      sync.Mutex
	results []faultResult
}

func startFaultLoad(t *testing.T, base string, targets []faultTarget, pause time.Duration, perClient int) *faultLoad {
	return startFaultLoadFor(t, base, targets, pause, perClient, faultLoadLimit)
}

// startFaultLoadFor is startFaultLoad with its own limit on how long the
// load runs.
func startFaultLoadFor(t *testing.T, base string, targets []faultTarget, pause time.Duration, perClient int, limit time.Duration) *faultLoad {
	l := &faultLoad{began: time.Now(), stop: make(chan struct{})}
	end := l.began.Add(limit)
	for _, tg := range targets {
		for i := range tg.clients {
			l.wg.Go(func() {
				tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
				defer tr.CloseIdleConnections()
				c := &http.Client{Transport: tr, Timeout: faultClientTimeout,
					CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				for seq := 0; seq < perClient && time.Now().Before(end); seq++ {
					r := faultGet(c, base, tg, i, seq)
					l.mu.Lock()
					l.results = append(l.results, r)
					l.mu.Unlock()
					select {
					case <-l.stop:
						return
					case <-time.After(pause):
					}
				}
			})
		}
	}
	t.Cleanup(func() { l.finish() })
	return l
}

// finish stops the clients, waits for them and returns every request,
// ordered by start.
func (l *faultLoad) finish() []faultResult {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	sort.Slice(l.results, func(i, j int) bool { return l.results[i].start.Before(l.results[j].start) })
	return slices.Clone(l.results)
}

// rel is a time relative to the load's start, for logs.
func (l *faultLoad) rel(at time.Time) string {
	return fmt.Sprintf("+%.2fs", at.Sub(l.began).Seconds())
}

// faultGet makes one request and reads what Django (or the Go upstream)
// reported of the flags header.
func faultGet(c *http.Client, base string, tg faultTarget, client, seq int) faultResult {
	r := faultResult{target: tg, client: client, seq: seq, start: time.Now()}
	req, err := http.NewRequest("GET", base+tg.path, nil)
	if err != nil {
		r.err, r.end = err, time.Now()
		return r
	}
	if tg.session != "" {
		req.Header.Set("Cookie", "sessionid="+tg.session)
	}
	resp, err := c.Do(req)
	if err != nil {
		r.err, r.end = err, time.Now()
		return r
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	r.end, r.status, r.ctype = time.Now(), resp.StatusCode, resp.Header.Get("Content-Type")
	if err != nil {
		r.err = fmt.Errorf("reading the body: %w", err)
		return r
	}
	if r.status != http.StatusOK {
		r.body = string(body[:min(len(body), 300)])
		return r
	}
	var header string
	if tg.path == "/echo/" {
		var e echo
		if r.decodeErr = json.Unmarshal(body, &e); r.decodeErr != nil {
			return r
		}
		header, r.user = e.Meta["HTTP_X_FLAGPROXY_FLAGS"], e.User.ID
	} else {
		var m map[string]string
		if r.decodeErr = json.Unmarshal(body, &m); r.decodeErr != nil {
			return r
		}
		header = m["HTTP_X_FLAGPROXY_FLAGS"]
	}
	var f faultFlags
	if r.decodeErr = json.Unmarshal([]byte(header), &f); r.decodeErr == nil {
		r.flags = &f
	}
	return r
}

func countFault(rs []faultResult, f func(faultResult) bool) int {
	n := 0
	for _, r := range rs {
		if f(r) {
			n++
		}
	}
	return n
}

// faultReport logs, for each kind of visitor, the requests sent, the
// responses by status and flag state, the failures and the latencies.
func faultReport(t *testing.T, rs []faultResult) {
	t.Helper()
	var classes []string
	for _, r := range rs {
		if !slices.Contains(classes, r.target.class) {
			classes = append(classes, r.target.class)
		}
	}
	for _, class := range classes {
		statuses, states := map[int]int{}, map[string]int{}
		var took []time.Duration
		sent, failed, staleIDs := 0, 0, 0
		for _, r := range rs {
			if r.target.class != class {
				continue
			}
			sent++
			took = append(took, r.took())
			if r.err != nil {
				failed++
				continue
			}
			statuses[r.status]++
			if r.flags != nil {
				states[r.flags.State]++
				if r.flags.Identity == "stale" {
					staleIDs++
				}
			}
		}
		slices.Sort(took)
		t.Logf("%s: %d sent, %d failed, by status %v, by state %v, identity stale %d; latency p50 %v p99 %v max %v",
			class, sent, failed, statuses, states, staleIDs, took[len(took)/2].Round(time.Millisecond),
			took[len(took)*99/100].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	}
	for _, r := range rs {
		if r.err != nil {
			t.Errorf("%s: request failed: %v", r, r.err)
		}
	}
}

// checkFaultAccounting checks every request sent got a response, and that
// flagproxy counted exactly the responses the clients got, by status.
func checkFaultAccounting(t *testing.T, rs []faultResult, before, after faultMetricSet) {
	t.Helper()
	ours := map[string]float64{}
	for _, r := range rs {
		if r.err == nil {
			ours[strconv.Itoa(r.status)]++
		}
	}
	theirs := map[string]float64{}
	for series, v := range after {
		if strings.HasPrefix(series, "flagproxy_requests_total{") {
			if d := v - before[series]; d != 0 {
				theirs[faultLabel(series, "code")] += d
			}
		}
	}
	// A response the upstream broke off mid-body never reached a client
	// whole; Go's client retries such a request on its own when the
	// connection was a reused one and nothing of the response had come.
	if n := theirs["aborted"]; n > 0 {
		t.Logf("responses aborted mid-body (not among the clients' answers): %v", n)
		delete(theirs, "aborted")
	}
	if fmt.Sprint(ours) != fmt.Sprint(theirs) {
		t.Errorf("responses by status: the clients got %v, flagproxy_requests_total counted %v", ours, theirs)
	} else {
		t.Logf("responses by status, as the clients and flagproxy_requests_total both counted them: %v", ours)
	}
}

// checkFaultLatency checks that no request took over limit; a request
// for which slow reports true is held only to faultClientTimeout (no hang).
func checkFaultLatency(t *testing.T, rs []faultResult, limit time.Duration, slow func(faultResult) bool) {
	t.Helper()
	for _, r := range rs {
		limit := limit
		if slow != nil && slow(r) {
			limit = faultClientTimeout
		}
		if r.took() > limit {
			t.Errorf("%s: took %v, want at most %v", r, r.took(), limit)
		}
	}
}

// checkFaultSequences checks that every client of class saw key's values,
// in its successive responses that carry flags, as want (runs of equal
// values collapsed).
func checkFaultSequences(t *testing.T, rs []faultResult, class, what string, key func(faultResult) string, want ...string) {
	t.Helper()
	seqs := faultSequences(rs, class, key)
	if len(seqs) == 0 {
		t.Errorf("%s: no responses", class)
	}
	for client, seq := range seqs {
		if !slices.Equal(seq, want) {
			t.Errorf("%s, client %d: %s went %v, want %v", class, client, what, seq, want)
		}
	}
}

func faultSequences(rs []faultResult, class string, key func(faultResult) string) map[int][]string {
	byClient := map[int][]faultResult{}
	for _, r := range rs {
		if r.target.class == class && r.flags != nil {
			byClient[r.client] = append(byClient[r.client], r)
		}
	}
	seqs := map[int][]string{}
	for client, crs := range byClient {
		sort.Slice(crs, func(i, j int) bool { return crs[i].seq < crs[j].seq })
		var seq []string
		for _, r := range crs {
			if v := key(r); len(seq) == 0 || seq[len(seq)-1] != v {
				seq = append(seq, v)
			}
		}
		seqs[client] = seq
	}
	return seqs
}

// logFaultTransitions logs when the class's responses changed state or
// identity, relative to the load's start.
func logFaultTransitions(t *testing.T, l *faultLoad, rs []faultResult, class string) {
	t.Helper()
	last := map[int]string{}
	var lines []string
	for _, r := range rs {
		if r.target.class != class || r.flags == nil {
			continue
		}
		v := r.flags.State
		if r.flags.Identity != "" {
			v += "/identity " + r.flags.Identity
		}
		if prev, ok := last[r.client]; !ok || prev != v {
			lines = append(lines, fmt.Sprintf("client %d at %s..%s: %s", r.client, l.rel(r.start), l.rel(r.end), v))
		}
		last[r.client] = v
	}
	t.Logf("%s transitions:\n  %s", class, strings.Join(lines, "\n  "))
}

// --- the admin listener ---

// faultMetricSet maps each series of /metrics ("name{labels}") to its value.
type faultMetricSet map[string]float64

func faultMetrics(t *testing.T, adminURL string) faultMetricSet {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := faultMetricSet{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); i > 0 && err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// sum adds the series of one metric.
func (m faultMetricSet) sum(name string) float64 {
	var s float64
	for series, v := range m {
		if series == name || strings.HasPrefix(series, name+"{") {
			s += v
		}
	}
	return s
}

// faultLabel is a label's value in a series.
func faultLabel(series, label string) string {
	_, rest, ok := strings.Cut(series, label+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

type faultReadiness struct {
	Ready      bool    `json:"ready"`
	Version    string  `json:"version"`
	AgeSeconds float64 `json:"age_seconds"`
	Restored   bool    `json:"restored"`
	Flags      int     `json:"flags"`
	Switches   int     `json:"switches"`
}

func faultReadyz(t *testing.T, adminURL string) faultReadiness {
	t.Helper()
	resp, err := http.Get(adminURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rd faultReadiness
	if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %d %v", resp.StatusCode, err)
	}
	return rd
}

func maxFaultTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
