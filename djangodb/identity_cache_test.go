package djangodb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// fakeResolver answers batches from a map of cookie value → subject, as a
// database would at the moment the batch reads it, and records every batch.
// A batch takes delay; with fail set it fails.
type fakeResolver struct {
	mu      sync.Mutex
	users   map[string]engine.Subject
	refuse  map[string]Reason // values refused for this reason (default: no row)
	until   time.Time
	fail    error
	delay   time.Duration
	batches [][]string
}

func newFake(users map[string]engine.Subject) *fakeResolver {
	return &fakeResolver{users: users, refuse: map[string]Reason{}}
}

func (r *fakeResolver) Plausible(v string) bool { return len(v) >= 8 }

func (r *fakeResolver) ResolveBatch(_ context.Context, values []string) ([]Resolution, int) {
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(values))
	out := make([]Resolution, len(values))
	for i, v := range values {
		s, ok := r.users[v]
		switch {
		case r.fail != nil:
			out[i] = Resolution{Reason: ReasonDatabaseError, Err: r.fail}
		case ok:
			out[i] = Resolution{Subject: s, Reason: ReasonAuthenticated, Until: r.until}
		case r.refuse[v] != "":
			out[i] = Resolution{Reason: r.refuse[v]}
		default:
			out[i] = Resolution{Reason: ReasonNoRow}
		}
	}
	delay := r.delay
	r.mu.Unlock()
	time.Sleep(delay) // the answer reflects the moment of the read
	return out, 1
}

// set changes the fake database under lock.
func (r *fakeResolver) set(f func(r *fakeResolver)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// numberedUsers returns n logged-in users, user i under the session value
// "<prefix>-%04d".
func numberedUsers(prefix string, n int) map[string]engine.Subject {
	users := make(map[string]engine.Subject, n)
	for i := range n {
		users[fmt.Sprintf("%s-%04d", prefix, i)] = engine.Subject{UserID: fmt.Sprint(i), Authenticated: true}
	}
	return users
}

// batchList returns the batches resolved so far.
func (r *fakeResolver) batchList() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

func (r *fakeResolver) batchCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

func (r *fakeResolver) lookedUp() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range r.batches {
		n += len(b)
	}
	return n
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func cookies(v string) engine.Values { return engine.Params{"sessionid": v} }

var (
	alice = engine.Subject{UserID: "1", Username: "alice", Authenticated: true, Active: true}
	bob   = engine.Subject{UserID: "2", Username: "bob", Authenticated: true, Active: true}
)

func newTestCache(t *testing.T, cfg IdentityCacheConfig) (*IdentityCache, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	c, err := NewIdentityCache(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

// ask returns who the cookie value stands for, and how long the request
// waited (in the bubble's time).
func ask(t *testing.T, c *IdentityCache, v string) (engine.Subject, time.Duration, error) {
	t.Helper()
	start := time.Now()
	s, err := c.Subject(t.Context(), cookies(v))
	return s, time.Since(start), err
}

// TestIdentityCacheFreshness: answers are reused within the TTL, never past
// it or the session's own expiry, and re-checked in the background in its
// last part (refresh ahead); an idle session past its TTL is looked up.
func TestIdentityCacheFreshness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"alicesession": alice})
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r})
		for range 100 {
			if s, _, err := ask(t, c, "alicesession"); err != nil || s.UserID != "1" {
				t.Fatalf("Subject = %+v, %v", s, err)
			}
		}
		if n := r.batchCount(); n != 1 {
			t.Errorf("100 requests made %d batches, want 1", n)
		}
		time.Sleep(DefaultIdentityTTL - c.ahead()) // in the refresh-ahead window
		if s, waited, _ := ask(t, c, "alicesession"); s.UserID != "1" || waited != 0 {
			t.Errorf("near the TTL: %+v after %v, want alice at once", s, waited)
		}
		synctest.Wait()
		time.Sleep(DefaultIdentityRecheckWait)
		synctest.Wait()
		if n := r.batchCount(); n != 2 {
			t.Errorf("near the TTL: %d batches, want 2", n)
		}
		time.Sleep(DefaultIdentityTTL + time.Second) // idle past the refreshed answer's TTL
		if s, waited, _ := ask(t, c, "alicesession"); s.UserID != "1" || waited == 0 || r.batchCount() != 3 {
			t.Errorf("idle past the TTL: %+v after %v (%d batches), want a lookup", s, waited, r.batchCount())
		}

		// A session that expires before the TTL bounds the cached answer.
		r.set(func(r *fakeResolver) {
			r.users["bobsession1"] = bob
			r.until = time.Now().Add(2 * time.Second)
		})
		ask(t, c, "bobsession1")
		time.Sleep(1500 * time.Millisecond)
		// (A background re-check may run by now: a session's first one
		// comes at a random moment.)
		if s, waited, _ := ask(t, c, "bobsession1"); s.UserID != bob.UserID || waited != 0 {
			t.Errorf("before the session's expiry: %+v after %v, want bob at once", s, waited)
		}
		time.Sleep(time.Second) // 2.5 s: past the session, within the 5 s TTL
		if _, waited, _ := ask(t, c, "bobsession1"); waited == 0 {
			t.Errorf("answer kept past the session's expiry (waited %v)", waited)
		}
		if s, _ := c.Subject(t.Context(), nil); s.Authenticated {
			t.Error("no cookies: want anonymous")
		}
	})
}

// TestIdentityCacheStaleWhileRevalidate: in the last part of its TTL, a
// known session's answer is served at once while a single background
// re-check runs, whose answer then replaces it.
func TestIdentityCacheStaleWhileRevalidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"alicesession": alice})
		r.delay = 300 * time.Millisecond // a slow database
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r})
		if s, waited, _ := ask(t, c, "alicesession"); s.UserID != "1" || waited < r.delay {
			t.Fatalf("first request: %+v after %v", s, waited)
		}
		staff := alice
		staff.Staff = true
		r.set(func(r *fakeResolver) { r.users["alicesession"] = staff })
		time.Sleep(DefaultIdentityTTL - c.ahead())
		// Requests during the re-check: the old answer, without waiting,
		// and only one re-check. The first request starts the re-check,
		// either through the sweep it triggers (at once) or by itself
		// (within RecheckWait), whichever goroutine runs first; so the
		// requests span less than the database's delay, which is "during"
		// both ways.
		for range 10 {
			s, waited, err := ask(t, c, "alicesession")
			if err != nil || s.Staff || !s.Authenticated || waited != 0 {
				t.Fatalf("during the re-check: %+v, %v after %v; want the old answer at once", s, err, waited)
			}
			time.Sleep(r.delay / 12)
		}
		time.Sleep(DefaultIdentityRecheckWait + r.delay)
		s, waited, _ := ask(t, c, "alicesession")
		if !s.Staff || waited != 0 {
			t.Errorf("after the re-check: %+v after %v, want the new answer at once", s, waited)
		}
		if n := r.batchCount(); n != 2 {
			t.Errorf("%d batches, want 2 (the first lookup and one re-check)", n)
		}
		time.Sleep(2 * DefaultIdentityTTL) // let the batcher drain
	})
}

// TestIdentityCacheChangeBound: a logout, a password change or a
// deactivation made at any moment is seen by every request that starts
// more than TTL later (the documented bound), whatever the database's speed
// and however the requests are spread.
func TestIdentityCacheChangeBound(t *testing.T) {
	const ttl, recheck, timeout = 5 * time.Second, 500 * time.Millisecond, 2 * time.Second
	bound := ttl
	changes := map[string]func(r *fakeResolver){
		"logout":          func(r *fakeResolver) { delete(r.users, "alicesession") },
		"password change": func(r *fakeResolver) { delete(r.users, "alicesession"); r.refuse["alicesession"] = ReasonHashMismatch },
		"deactivation":    func(r *fakeResolver) { delete(r.users, "alicesession"); r.refuse["alicesession"] = ReasonUserInactive },
	}
	for name, change := range changes {
		for _, delay := range []time.Duration{0, 100 * time.Millisecond, timeout - time.Millisecond} {
			for _, every := range []time.Duration{10 * time.Millisecond, 700 * time.Millisecond, time.Hour} {
				for _, after := range []time.Duration{0, ttl - time.Millisecond, ttl + recheck} {
					t.Run(fmt.Sprintf("%s/db=%v/every=%v/at=%v", name, delay, every, after), func(t *testing.T) {
						synctest.Test(t, func(t *testing.T) {
							r := newFake(map[string]engine.Subject{"alicesession": alice})
							r.delay = delay
							c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r, TTL: ttl, RecheckWait: recheck, LookupTimeout: timeout})
							ask(t, c, "alicesession")
							// The change lands just after a read.
							time.Sleep(after)
							r.set(change)
							changed := time.Now()
							deadline := changed.Add(bound)
							for time.Since(changed) < 3*bound {
								start := time.Now()
								s, _ := c.Subject(t.Context(), cookies("alicesession"))
								if s.Authenticated && !start.Before(deadline) {
									t.Fatalf("a request %v after the change was still served as alice (bound %v)", start.Sub(changed), bound)
								}
								time.Sleep(min(every, 2*bound))
							}
						})
					})
				}
			}
		}
	}
}

// TestIdentityCacheIdleSessionWaits: a known session back after longer
// than its TTL is not served its old answer: the request waits for
// the re-check (and sees a logout made meanwhile).
func TestIdentityCacheIdleSessionWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"alicesession": alice})
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r})
		ask(t, c, "alicesession")
		r.set(func(r *fakeResolver) { delete(r.users, "alicesession") })
		time.Sleep(time.Hour)
		s, waited, _ := ask(t, c, "alicesession")
		if s.Authenticated {
			t.Error("an hour-old answer was served")
		}
		if waited != DefaultIdentityBatchWait {
			t.Errorf("waited %v, want the batch wait %v", waited, DefaultIdentityBatchWait)
		}
	})
}

// TestIdentityCacheBatchesNewSessions: N sessions asked for at once take
// ceil(N/batch) batches, where a batch holds at most BatchSize sessions and
// at most 100 not yet known; and known sessions' re-checks share batches.
func TestIdentityCacheBatchesNewSessions(t *testing.T) {
	for _, tc := range []struct{ n, batchSize, perBatch int }{
		{1, 0, 100}, {99, 0, 100}, {100, 0, 100}, {101, 0, 100}, {250, 0, 100}, {1000, 0, 100}, {25, 10, 10}, {250, 10, 10},
	} {
		t.Run(fmt.Sprintf("n=%d/size=%d", tc.n, tc.batchSize), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				users := map[string]engine.Subject{}
				for i := range tc.n {
					users[fmt.Sprintf("session-%06d", i)] = engine.Subject{UserID: fmt.Sprint(i), Authenticated: true}
				}
				r := newFake(users)
				r.delay = 5 * time.Millisecond
				c, reg := newTestCache(t, IdentityCacheConfig{Resolver: r, BatchSize: tc.batchSize})
				var wg sync.WaitGroup
				var wrong atomic.Int64
				var maxWait atomic.Int64
				ask := func(i int) {
					start := time.Now()
					s, err := c.Subject(t.Context(), cookies(fmt.Sprintf("session-%06d", i)))
					if err != nil || s.UserID != fmt.Sprint(i) {
						wrong.Add(1)
					}
					if w := int64(time.Since(start)); w > maxWait.Load() {
						maxWait.Store(w)
					}
				}
				for i := range tc.n {
					wg.Go(func() { ask(i) })
				}
				wg.Wait()
				want := (tc.n + tc.perBatch - 1) / tc.perBatch
				if got := r.batchCount(); got != want {
					t.Errorf("%d concurrent new sessions: %d batches, want %d", tc.n, got, want)
				}
				if got := testutil.ToFloat64(c.queries); got != float64(want) {
					t.Errorf("flagproxy_identity_queries_total = %v, want %d", got, want)
				}
				if wrong.Load() > 0 {
					t.Errorf("%d visitors got someone else's identity, or none", wrong.Load())
				}
				// At most 4 batches run at once; the rest wait for a slot.
				rounds := (want + maxConcurrentLookups - 1) / maxConcurrentLookups
				if limit := DefaultIdentityBatchWait + time.Duration(rounds)*r.delay; time.Duration(maxWait.Load()) > limit {
					t.Errorf("a request waited %v, want at most %v", time.Duration(maxWait.Load()), limit)
				}

				// All the answers fall due together: the re-checks of
				// these known sessions share batches of up to BatchSize.
				time.Sleep(DefaultIdentityTTL)
				before := r.batchCount()
				for i := range tc.n {
					wg.Go(func() { ask(i) })
				}
				wg.Wait()
				time.Sleep(DefaultIdentityRecheckWait + r.delay)
				size := cmp.Or(tc.batchSize, DefaultIdentityBatchSize)
				if got, want := r.batchCount()-before, (tc.n+size-1)/size; got != want {
					t.Errorf("%d re-checks: %d batches, want %d", tc.n, got, want)
				}
				if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
					t.Errorf("metrics lint: %v %v", problems, err)
				}
			})
		})
	}
}

// TestIdentityCacheBoundsSprays sends random session ids from many
// clients for longer than the TTL: the database sees at most the budget's
// batches of at most 100 ids each, memory stays within Entries, the known
// user stays logged in throughout, and values that cannot be sessions cost
// nothing.
func TestIdentityCacheBoundsSprays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"goodsession": alice})
		r.delay = 20 * time.Millisecond
		const entries, perSecond = 100, 10
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r, Entries: entries, LookupsPerSecond: perSecond})
		if s, _, _ := ask(t, c, "goodsession"); !s.Authenticated {
			t.Fatal("good session not accepted")
		}
		start := time.Now()
		const length = 12 * time.Second // more than TTL + grace
		var wg sync.WaitGroup
		var sent atomic.Int64
		for g := range 3 * entries { // more clients than lookups may wait
			wg.Go(func() {
				for i := 0; time.Since(start) < length; i++ {
					sent.Add(1)
					c.Subject(t.Context(), cookies(fmt.Sprintf("random-%03d-%08d", g, i)))
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
		var maxPending, maxCached int
		wg.Go(func() {
			for time.Since(start) < length {
				c.batch.mu.Lock()
				maxPending = max(maxPending, len(c.batch.calls))
				c.batch.mu.Unlock()
				maxCached = max(maxCached, c.known.Len()+c.refused.Len())
				time.Sleep(time.Millisecond)
			}
		})
		var loggedOut atomic.Int64
		wg.Go(func() {
			for time.Since(start) < length {
				if s, _ := c.Subject(t.Context(), cookies("goodsession")); !s.Authenticated {
					loggedOut.Add(1)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
		wg.Wait()
		elapsed := time.Since(start)
		t.Logf("%d random ids in %v: %d batches, %d ids looked up", sent.Load(), elapsed, r.batchCount(), r.lookedUp())
		// The budget: a burst of 21, then 10 a second; the known user's
		// re-checks (one every TTL-Ahead, 2.5 s: five in 12 s) come on top.
		if limit := 21 + int(perSecond*elapsed.Seconds()) + 5; r.batchCount() > limit {
			t.Errorf("%d batches, want at most %d", r.batchCount(), limit)
		}
		for _, b := range r.batches {
			if len(b) > maxNewPerBatch+1 {
				t.Errorf("a batch of %d ids, want at most %d", len(b), maxNewPerBatch+1)
			}
		}
		// Queued: at most Entries unknown sessions (and the known one);
		// running: at most 4 batches.
		if limit := entries + 1 + maxConcurrentLookups*(maxNewPerBatch+1); maxPending > limit {
			t.Errorf("%d lookups pending at once, want at most %d", maxPending, limit)
		}
		if maxCached > 2*entries {
			t.Errorf("cache holds %d entries, want at most 2×%d", maxCached, entries)
		}
		if loggedOut.Load() > 0 {
			t.Errorf("the spray made the known user anonymous %d times", loggedOut.Load())
		}
		if got := testutil.ToFloat64(c.rejected.WithLabelValues(string(ReasonLookupsLimited))); got < float64(sent.Load())/2 {
			t.Errorf("rate-limited rejections = %v of %d", got, sent.Load())
		}
		// Values that cannot be sessions never reach the database.
		before := r.batchCount()
		for range 1000 {
			ask(t, c, "short")
		}
		if r.batchCount() != before {
			t.Errorf("implausible values made %d batches", r.batchCount()-before)
		}
		if n := r.lookedUp(); n > maxNewPerBatch*r.batchCount() {
			t.Errorf("%d ids looked up in %d batches", n, r.batchCount())
		}
	})
}

// TestIdentityCacheOutage: while the database fails, a known identity is
// served marked stale until its last good check is StaleMax old, then
// anonymous; a session never seen is anonymous; recovery clears Stale.
func TestIdentityCacheOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"alicesession": alice, "bobsession1": bob})
		const staleMax = time.Minute
		c, reg := newTestCache(t, IdentityCacheConfig{Resolver: r, StaleMax: staleMax})
		checked := time.Now()
		ask(t, c, "alicesession")
		ask(t, c, "bobsession1")
		down := errors.New("connection refused")
		r.set(func(r *fakeResolver) { r.fail = down })

		time.Sleep(DefaultIdentityTTL - c.ahead())
		// The first request near the TTL does not know of the outage yet:
		// the old answer, while the re-check runs (and fails).
		known := map[string]engine.Subject{"alicesession": alice, "bobsession1": bob}
		for v, want := range known {
			if s, waited, err := ask(t, c, v); s.UserID != want.UserID || s.Stale || err != nil || waited != 0 {
				t.Fatalf("near the TTL: %+v, %v after %v", s, err, waited)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		for time.Since(checked) < staleMax-time.Second {
			for v, want := range known {
				s, waited, err := ask(t, c, v)
				if s.UserID != want.UserID || !s.Stale || err != nil || waited != 0 {
					t.Fatalf("%v into the outage: %+v, %v after %v; want %s, stale, at once", time.Since(checked), s, err, waited, want.Username)
				}
			}
			if s, _, err := ask(t, c, "newsession"); s.Authenticated || err == nil {
				t.Fatalf("a new session during the outage: %+v, %v; want anonymous with the error", s, err)
			}
			time.Sleep(7 * time.Second)
		}
		if got := testutil.ToFloat64(c.stale); got == 0 {
			t.Error("flagproxy_identity_stale_total not counted")
		}
		// Retries while stale: at most about one a second per session.
		if n, limit := r.batchCount(), 2+2*int(staleMax/time.Second); n > limit {
			t.Errorf("%d batches during a %v outage, want at most %d", n, staleMax, limit)
		}
		// Past StaleMax: anonymous, with the error.
		time.Sleep(time.Until(checked.Add(staleMax + time.Second)))
		if s, _, err := ask(t, c, "alicesession"); s.Authenticated || !errors.Is(err, down) {
			t.Errorf("past StaleMax: %+v, %v; want anonymous with the error", s, err)
		}
		// Recovery: the next request gets a fresh, non-stale answer.
		r.set(func(r *fakeResolver) { r.fail = nil })
		if s, _, err := ask(t, c, "alicesession"); s.UserID != "1" || s.Stale || err != nil {
			t.Errorf("after recovery: %+v, %v", s, err)
		}
		if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
			t.Errorf("metrics lint: %v %v", problems, err)
		}
	})
}

// TestIdentityCacheOutageRecovery: recovery within StaleMax clears Stale
// within a retry and a re-check.
func TestIdentityCacheOutageRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"alicesession": alice})
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r, StaleMax: time.Minute})
		ask(t, c, "alicesession")
		r.set(func(r *fakeResolver) { r.fail = errors.New("down") })
		time.Sleep(DefaultIdentityTTL)
		ask(t, c, "alicesession")
		time.Sleep(DefaultIdentityRecheckWait)
		synctest.Wait()
		if s, _, _ := ask(t, c, "alicesession"); !s.Stale {
			t.Fatal("not stale during the outage")
		}
		r.set(func(r *fakeResolver) { r.fail = nil })
		recovered := time.Now()
		for {
			s, waited, _ := ask(t, c, "alicesession")
			if waited != 0 || s.UserID != "1" {
				t.Fatalf("during recovery: %+v after %v", s, waited)
			}
			if !s.Stale {
				break
			}
			// A retry is due within a second of the last failure; it
			// waits RecheckWait for its batch; plus this loop's step.
			if time.Since(recovered) > maxOutageRetry+DefaultIdentityRecheckWait+50*time.Millisecond {
				t.Fatalf("still stale %v after recovery", time.Since(recovered))
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Time stops when this function returns: let the batcher drain.
		time.Sleep(2 * DefaultIdentityTTL)
	})
}

// TestIdentityCacheHungDatabase: a database that accepts connections and
// never answers holds a re-check far past LookupTimeout. A known visitor's
// request waits for it at most once; every other request in the outage is
// served stale at once, and none queues another lookup behind the hung one.
func TestIdentityCacheHungDatabase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"alicesession": alice})
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r, StaleMax: 10 * time.Minute, LookupTimeout: 2 * time.Second})
		ask(t, c, "alicesession")
		r.set(func(r *fakeResolver) { r.delay, r.fail = 5*time.Minute, errors.New("hung") })
		before := r.batchCount()
		time.Sleep(DefaultIdentityTTL)
		var waits int
		for range 60 {
			s, waited, err := ask(t, c, "alicesession")
			if s.UserID != "1" || err != nil {
				t.Fatalf("in the outage: %+v, %v", s, err)
			}
			if waited > 0 {
				waits++
			}
			time.Sleep(time.Second)
		}
		if waits > 1 {
			t.Errorf("%d of 60 requests waited for the hung re-check, want at most 1", waits)
		}
		if n := r.batchCount() - before; n > 1 {
			t.Errorf("%d batches started behind the hung one", n-1)
		}
		time.Sleep(5 * time.Minute) // let the hung re-check end
	})
}

// TestIdentityCacheStaleMaxZero: with stale serving off, a failed re-check
// makes the visitor anonymous, with the error.
func TestIdentityCacheStaleMaxZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"alicesession": alice})
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r})
		ask(t, c, "alicesession")
		r.set(func(r *fakeResolver) { r.fail = errors.New("down") })
		time.Sleep(DefaultIdentityTTL)
		ask(t, c, "alicesession") // served while the re-check runs
		time.Sleep(DefaultIdentityRecheckWait)
		synctest.Wait()
		if s, _, err := ask(t, c, "alicesession"); s.Authenticated || s.Stale || err == nil {
			t.Errorf("StaleMax 0, re-check failed: %+v, %v; want anonymous with the error", s, err)
		}
	})
}

// misshapen answers batches with one answer too few.
type misshapen struct{ *fakeResolver }

func (m *misshapen) ResolveBatch(ctx context.Context, values []string) ([]Resolution, int) {
	out, n := m.fakeResolver.ResolveBatch(ctx, values)
	return out[1:], n
}

// TestIdentityCacheNeverCrossesCookies: many visitors at once each get
// their own identity, and a resolver answering out of shape gives none.
func TestIdentityCacheNeverCrossesCookies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		users := map[string]engine.Subject{}
		for i := range 500 {
			users[fmt.Sprintf("visitor-%04d", i)] = engine.Subject{UserID: fmt.Sprint(i), Authenticated: true}
		}
		r := newFake(users)
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r, BatchSize: 64})
		var wg sync.WaitGroup
		for round := range 3 {
			for i := range 500 {
				wg.Go(func() {
					s, err := c.Subject(t.Context(), cookies(fmt.Sprintf("visitor-%04d", i)))
					if err != nil || s.UserID != fmt.Sprint(i) {
						t.Errorf("round %d: visitor %d got %+v, %v", round, i, s, err)
					}
				})
			}
			wg.Wait()
			time.Sleep(DefaultIdentityTTL)
		}

		m := &misshapen{newFake(map[string]engine.Subject{"alicesession": alice, "bobsession1": bob})}
		c, _ = newTestCache(t, IdentityCacheConfig{Resolver: m})
		for _, v := range []string{"alicesession", "bobsession1"} {
			wg.Go(func() {
				if s, err := c.Subject(t.Context(), cookies(v)); s.Authenticated || err == nil {
					t.Errorf("%s with a misshapen answer: %+v, %v", v, s, err)
				}
			})
		}
		wg.Wait()
	})
}

// TestIdentityCacheLookupTimeout: a request waits at most LookupTimeout,
// then is anonymous; the answer still lands in the cache for the next one.
func TestIdentityCacheLookupTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"alicesession": alice})
		r.delay = 3 * time.Second
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r, LookupTimeout: time.Second})
		s, waited, err := ask(t, c, "alicesession")
		if s.Authenticated || !errors.Is(err, errLookupTimeout) || waited != time.Second {
			t.Errorf("slow lookup: %+v, %v after %v; want anonymous after 1s", s, err, waited)
		}
		time.Sleep(3 * time.Second)
		if s, waited, _ := ask(t, c, "alicesession"); s.UserID != "1" || waited != 0 {
			t.Errorf("after the slow lookup: %+v after %v", s, waited)
		}
		time.Sleep(5 * time.Second) // let a refresh-ahead re-check finish
	})
}

// TestCachedSessionMakesNoQuery resolves a real Django session once, then
// closes the database: the following requests are still answered, which
// they could not be if any of them queried it.
func TestCachedSessionMakesNoQuery(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		key := "0123456789abcdefghijklmnopqrstuv"
		uid := loginSession(t, db, key, "k")
		h, err := Open(db.Target)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := NewIdentities(h, db.Dialect, SessionConfig{SecretKey: "k", UseTZ: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewIdentityCache(IdentityCacheConfig{Resolver: ids, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if s, err := c.Subject(t.Context(), cookies(key)); err != nil || s.UserID != uid {
			t.Fatalf("first request: %+v, %v; want user %s", s, err, uid)
		}
		h.Close()
		for range 1000 {
			if s, err := c.Subject(t.Context(), cookies(key)); err != nil || s.UserID != uid {
				t.Fatalf("cached request: %+v, %v", s, err)
			}
		}
		if _, _, _, err := ids.Resolve(t.Context(), key); err == nil {
			t.Fatal("the closed database still answered; the test proves nothing")
		}
	})
}

func BenchmarkIdentityCacheHit(b *testing.B) {
	r := newFake(map[string]engine.Subject{"0123456789abcdefghijklmnopqrstuv": {UserID: "1", Authenticated: true, Active: true, Groups: []int64{1, 2}}})
	c, err := NewIdentityCache(IdentityCacheConfig{Resolver: r, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ck := cookies("0123456789abcdefghijklmnopqrstuv")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if s, _ := c.Subject(ctx, ck); !s.Authenticated {
			b.Fatal("miss")
		}
	}
}

// TestIdentityCacheShortTTLNeverWaits: with a TTL of 1 s an active visitor
// still never waits after the first lookup: the refresh-ahead re-check
// shortens its batch wait to fit the window.
func TestIdentityCacheShortTTLNeverWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"alicesession": alice})
		r.delay = 5 * time.Millisecond
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r, TTL: time.Second})
		ask(t, c, "alicesession")
		waits := 0
		for range 50 {
			time.Sleep(100 * time.Millisecond)
			if s, waited, _ := ask(t, c, "alicesession"); s.UserID != "1" || waited > 0 {
				waits++
			}
		}
		if waits > 0 {
			t.Errorf("an active visitor waited %d times in 5 s with a 1 s TTL", waits)
		}
		time.Sleep(2 * time.Second)
	})
}

// TestIdentityCacheSweep: sessions used since their last check (a
// request that waited for the check counts) are re-checked in the
// background before their TTL, a sweep's worth at a time, so a visitor
// coming back after longer than the TTL, but within about two, does not
// wait; a session not used since its last check is not re-checked again,
// and waits when it comes back past its TTL.
func TestIdentityCacheSweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 300
		users := numberedUsers("active", n)
		users["idlesession"] = bob
		r := newFake(users)
		r.delay = 10 * time.Millisecond
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r, BatchSize: 2 * n})
		visitAll := func(round string, wantWait bool) {
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					s, waited, err := ask(t, c, fmt.Sprintf("active-%04d", i))
					if err != nil || s.UserID != fmt.Sprint(i) || (waited > 0) != wantWait {
						t.Errorf("%s: visitor %d: %+v, %v after %v", round, i, s, err, waited)
					}
				})
			}
			wg.Wait()
		}
		// Other traffic goes on throughout (it starts the sweeps).
		traffic := func(d time.Duration) {
			for start := time.Now(); time.Since(start) < d; time.Sleep(100 * time.Millisecond) {
				ask(t, c, "nobody-at-all")
			}
		}
		visitAll("first", true)
		ask(t, c, "idlesession")
		first := r.batchCount()
		traffic(time.Second)
		visitAll("within the TTL", false)
		traffic(6 * time.Second)
		swept := r.batchCount()
		visitAll("past the TTL of the first check", false)
		traffic(10 * time.Second)
		// count returns how many of batches hold sessions v picks, how
		// many sessions they hold, and how many distinct ones.
		count := func(batches [][]string, v func(string) bool) (n, values, distinct int) {
			seen := map[string]bool{}
			for _, b := range batches {
				if slices.ContainsFunc(b, v) {
					n++
				}
				for _, x := range b {
					if v(x) {
						values++
						seen[x] = true
					}
				}
			}
			return n, values, len(seen)
		}
		isActive := func(v string) bool { return strings.HasPrefix(v, "active-") }
		// The active sessions: each re-checked before 7 s (their first
		// re-checks spread over the sweeps, each at most one batch);
		// then, used again at 7 s, each once more, at most twice (the
		// re-check after an early first one counts as used); then not.
		sweeps := int((7*time.Second)/DefaultIdentityRecheckWait) + 1
		batches := r.batchList()
		if n, _, distinct := count(batches[first:swept], isActive); distinct != 300 || n > sweeps {
			t.Errorf("before 7 s, %d of the 300 active sessions re-checked, in %d batches; want all, in at most %d", distinct, n, sweeps)
		}
		if _, values, distinct := count(batches[swept:], isActive); distinct != 300 || values > 600 {
			t.Errorf("after their use at 7 s, %d re-checks of %d of the 300 active sessions; want all, at most twice each", values, distinct)
		}
		if _, idle, _ := count(batches[first:], func(v string) bool { return v == "idlesession" }); idle < 1 || idle > 2 {
			t.Errorf("a session used once was re-checked %d times, want once or twice (after an early first re-check)", idle)
		}
		if _, waited, _ := ask(t, c, "idlesession"); waited == 0 {
			t.Error("a session idle past its TTL was served without a lookup")
		}
		time.Sleep(2 * DefaultIdentityTTL)
	})
}

// TestIdentityCacheSweepAfterIdleSpell: the first sweep after a spell
// with no requests at all does not re-check the sessions whose answers
// passed their TTL meanwhile (they are looked up if they come back); a
// session still in the last part of its TTL is re-checked as usual.
func TestIdentityCacheSweepAfterIdleSpell(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 50
		users := numberedUsers("gone", n)
		users["alicesession"] = alice
		r := newFake(users)
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r})
		for i := range n {
			ask(t, c, fmt.Sprintf("gone-%04d", i)) // each waits: used
		}
		time.Sleep(time.Hour)
		before := r.batchCount()
		ask(t, c, "alicesession") // starts the first sweep after the spell
		time.Sleep(DefaultIdentityTTL - DefaultIdentityRecheckWait)
		ask(t, c, "alicesession") // in the last part of her TTL: starts a sweep
		synctest.Wait()
		time.Sleep(DefaultIdentityRecheckWait)
		synctest.Wait()
		var looked []string
		for _, b := range r.batchList()[before:] {
			looked = append(looked, b...)
		}
		if !slices.Equal(looked, []string{"alicesession", "alicesession"}) {
			t.Errorf("after an hour's idle spell: looked up %d sessions (first %q), want alice twice (her lookup and re-check)", len(looked), looked[:min(3, len(looked))])
		}
	})
}

// TestIdentityCacheKeepsNoHeader: a known session's entry keeps its cookie
// value as a copy, not as a slice of the Cookie header the value was read
// from, which is as long as the visitor's cookies (6 KB with 1,000 flags);
// a re-check keeps the entry's copy rather than copying again.
func TestIdentityCacheKeepsNoHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"alicesession": alice})
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r})
		header := "alicesession; " + strings.Repeat("dwf_flag=True; ", 400)
		value := header[:len("alicesession")]
		if s, err := c.Subject(t.Context(), cookies(value)); err != nil || s.UserID != alice.UserID {
			t.Fatalf("first request: %+v, %v", s, err)
		}
		key := digestOf(value)
		e, ok := c.known.Peek(key)
		if !ok || e.value != value {
			t.Fatalf("known entry: %+v, %v", e, ok)
		}
		within := func(s string) bool {
			p, start := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(header)))
			return p >= start && p < start+uintptr(len(header))
		}
		if within(e.value) {
			t.Fatal("the entry keeps a slice of the request's whole Cookie header")
		}
		kept := unsafe.StringData(e.value)
		// Requests (with the same header) until a re-check replaces the entry.
		for e2 := e; e2 == e; e2, _ = c.known.Peek(key) {
			if time.Since(e.checked) > 2*DefaultIdentityTTL {
				t.Fatal("no re-check replaced the entry")
			}
			time.Sleep(100 * time.Millisecond)
			if _, err := c.Subject(t.Context(), cookies(value)); err != nil {
				t.Fatal(err)
			}
		}
		if e2, _ := c.known.Peek(key); unsafe.StringData(e2.value) != kept {
			t.Error("a re-check copied the value again")
		}
		time.Sleep(2 * DefaultIdentityTTL) // let the batcher drain
	})
}
