package djangodb

import (
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
		r := newFake(map[string]engine.Subject{"alicesession": alice})
		r.delay = 10 * time.Millisecond
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r})
		ask(t, c, "alicesession")
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
		r := newFake(map[string]engine.Subject{"alicesession": alice})
		r.delay = 10 * time.Millisecond
		c, _ := newTestCache(t, IdentityCacheConfig{Resolver: r})
		ask(t, c, "alicesession")
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
