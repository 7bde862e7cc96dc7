package djangodb

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// TestRecheckMargin: twice the slowest batch of the current and the last
// 30 s window, within its bounds; the widest until a batch has answered.
func TestRecheckMargin(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	m := newRecheckMargin(1250 * time.Millisecond)
	steps := []struct {
		at, took time.Duration // since t0; how long the batch took
		want     time.Duration
	}{
		{0, 0, 1250 * time.Millisecond}, // before any batch (not observed)
		{time.Second, 10 * time.Millisecond, minRecheckMargin},
		{2 * time.Second, 80 * time.Millisecond, 160 * time.Millisecond},
		{3 * time.Second, 20 * time.Millisecond, 160 * time.Millisecond},
		{3 * time.Second, time.Second, 1250 * time.Millisecond},            // capped
		{40 * time.Second, 10 * time.Millisecond, 1250 * time.Millisecond}, // the last window's
		{75 * time.Second, 60 * time.Millisecond, 120 * time.Millisecond},  // both windows fast
		{200 * time.Second, -time.Second, minRecheckMargin},                // idle; a batch early
	}
	for i, s := range steps {
		if i > 0 {
			now := t0.Add(s.at)
			m.observe(now.Add(-s.took), now)
		}
		if got := m.get(); got != s.want {
			t.Errorf("step %d (at %v, took %v): margin %v, want %v", i, s.at, s.took, got, s.want)
		}
	}
}

// TestIdentityCacheRecheckInterval: with a database that answers in
// milliseconds, an active session is re-checked about once a TTL, not a
// third more often, and never waits.
func TestIdentityCacheRecheckInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, c := aliceLookedUp(t)
		const run = time.Minute
		for start := time.Now(); time.Since(start) < run; time.Sleep(100 * time.Millisecond) {
			if s, waited, _ := ask(t, c, "alicesession"); s.UserID != "1" || waited != 0 {
				t.Fatalf("%v in: %+v after %v, want alice at once", time.Since(start), s, waited)
			}
		}
		// A re-check every TTL-ahead to TTL-margin: 4.4 to 4.9 s.
		if n := r.batchCount() - 1; n < int(run/(DefaultIdentityTTL-minRecheckMargin)) || n > int(run/(DefaultIdentityTTL-DefaultIdentityRecheckWait-minRecheckMargin))+1 {
			t.Errorf("%d re-checks in %v, want one every 4.4 to 4.9 s", n, run)
		}
		time.Sleep(2 * DefaultIdentityTTL)
	})
}

// TestIdentityCacheDatabaseSlowsDown: when re-checks slow down, requests
// may wait for the re-check under way during one TTL (never longer than
// it takes); then the margin has grown and no request waits. When the
// database is fast again, the margin shrinks back within a minute.
func TestIdentityCacheDatabaseSlowsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, c := aliceLookedUp(t)
		visit := func(d time.Duration) (waits int, longest time.Duration) {
			for start := time.Now(); time.Since(start) < d; time.Sleep(100 * time.Millisecond) {
				s, waited, _ := ask(t, c, "alicesession")
				if s.UserID != "1" {
					t.Fatalf("%+v, want alice", s)
				}
				if waited > 0 {
					waits++
				}
				longest = max(longest, waited)
			}
			return waits, longest
		}
		visit(20 * time.Second)
		const slow = 800 * time.Millisecond
		r.set(func(r *fakeResolver) { r.delay = slow })
		if _, longest := visit(DefaultIdentityTTL + time.Second); longest > slow {
			t.Errorf("in the TTL after the slowdown, a request waited %v, longer than a re-check takes", longest)
		}
		if waits, longest := visit(30 * time.Second); waits > 0 {
			t.Errorf("after the first TTL of a slow database, %d requests waited (up to %v)", waits, longest)
		}
		if got, want := c.margin.get(), DefaultIdentityTTL/4; got != want {
			t.Errorf("margin with a slow database: %v, want the widest, %v", got, want)
		}
		r.set(func(r *fakeResolver) { r.delay = 10 * time.Millisecond })
		if waits, _ := visit(time.Minute + DefaultIdentityTTL); waits > 0 {
			t.Errorf("fast again: %d requests waited", waits)
		}
		if got := c.margin.get(); got != minRecheckMargin {
			t.Errorf("margin a minute after the database is fast again: %v, want %v", got, minRecheckMargin)
		}
		time.Sleep(2 * DefaultIdentityTTL)
	})
}

// TestIdentityCacheFirstRechecksSpread: sessions first seen together (as
// after a restart) are re-checked a few at a time, not in one wave every
// cycle; none waits meanwhile, and the margin stays at its least.
func TestIdentityCacheFirstRechecksSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 1000
		r := newFake(numberedUsers("session", n))
		r.delay = 10 * time.Millisecond
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r})
		visitAll := func(round int) {
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					if s, waited, _ := ask(t, c, fmt.Sprintf("session-%04d", i)); s.UserID != fmt.Sprint(i) || (round > 0 && waited > 0) {
						t.Errorf("round %d, visitor %d: %+v after %v", round, i, s, waited)
					}
				})
			}
			wg.Wait()
		}
		for round := range 60 { // every session every half second, for 30 s
			visitAll(round)
			time.Sleep(500 * time.Millisecond)
		}
		largest := 0
		batches := r.batchList()
		for _, b := range batches[len(batches)/2:] { // the last 15 s
			largest = max(largest, len(b))
		}
		if largest > n/3 {
			t.Errorf("a batch re-checked %d of the %d sessions first seen together, want at most a third", largest, n)
		}
		if got := c.margin.get(); got != minRecheckMargin {
			t.Errorf("margin %v, want %v", got, minRecheckMargin)
		}
		time.Sleep(2 * DefaultIdentityTTL)
	})
}

// TestIdentityCacheLateRequestRecheck: a session not used since its last
// check and first used again late in the last part of its TTL, between two
// sweeps, is re-checked by that request soon enough to answer by the TTL,
// not a whole RecheckWait later.
func TestIdentityCacheLateRequestRecheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFake(map[string]engine.Subject{"alicesession": alice, "bobsession1": bob})
		r.delay = 10 * time.Millisecond
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r})
		ask(t, c, "alicesession")
		ask(t, c, "bobsession1")
		// Bob's requests start the sweeps, which re-check alice (her
		// lookup counts as a use, and so does her early first re-check)
		// until her answer is one not used.
		var e *knownEntry
		for start := time.Now(); e == nil || e.used.Load(); time.Sleep(100 * time.Millisecond) {
			if time.Since(start) > 4*DefaultIdentityTTL {
				t.Fatal("alice's answers are all used")
			}
			ask(t, c, "bobsession1")
			synctest.Wait()
			e, _ = c.known.Peek(digestOf("alicesession"))
		}
		before := r.batchCount()
		// A sweep just now, so that the next is RecheckWait away; then
		// alice, 50 ms before the margin ends.
		time.Sleep(time.Until(e.checked.Add(DefaultIdentityTTL - c.margin.get() - 50*time.Millisecond - time.Millisecond)))
		c.sweeper.next.Store(0)
		ask(t, c, "bobsession1")
		time.Sleep(time.Millisecond)
		if _, waited, _ := ask(t, c, "alicesession"); waited > 0 {
			t.Fatalf("in the last part of her TTL alice waited %v", waited)
		}
		time.Sleep(time.Until(e.checked.Add(DefaultIdentityTTL)))
		if s, waited, _ := ask(t, c, "alicesession"); s.UserID != "1" || waited > 0 {
			t.Errorf("at her answer's TTL: %+v after %v, want the re-checked answer at once", s, waited)
		}
		if r.batchCount() == before {
			t.Error("no re-check of alice")
		}
		time.Sleep(2 * DefaultIdentityTTL)
	})
}

// aliceLookedUp returns a cache with default settings over a database that
// answers in 10 ms, once alice's session has been looked up.
func aliceLookedUp(t *testing.T) (*fakeResolver, *IdentityCache) {
	r := newFake(map[string]engine.Subject{"alicesession": alice})
	r.delay = 10 * time.Millisecond
	c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r})
	ask(t, c, "alicesession")
	return r, c
}
