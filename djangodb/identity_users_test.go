package djangodb

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// fakeUserLookup answers from a map and counts its lookups; down makes
// every lookup a database error.
type fakeUserLookup struct {
	mu    sync.Mutex
	users map[string]engine.Subject
	calls map[string]int
	down  bool
}

func (f *fakeUserLookup) User(_ context.Context, pk string) (engine.Subject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[pk]++
	if f.down {
		return engine.Anonymous, errors.New("database is down")
	}
	return f.users[pk], nil
}

func (f *fakeUserLookup) count(pk string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[pk]
}

func newUserCacheTest(t *testing.T, cfg UserCacheConfig) (*UserCache, *fakeUserLookup, *clock, *prometheus.Registry) {
	t.Helper()
	f := &fakeUserLookup{users: map[string]engine.Subject{"1": alice, "2": bob}, calls: map[string]int{}}
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	cfg.Lookup, cfg.Now, cfg.Registerer = f, clk.now, reg
	c, err := NewUserCache(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, f, clk, reg
}

// TestUserCache: answers are reused within the TTL and looked up again
// after it; unknown keys are cached apart and never evict known users; an
// overlong key costs no lookup; during an outage a known user is served
// stale up to StaleMax, an unknown one is anonymous.
func TestUserCache(t *testing.T) {
	c, f, clk, reg := newUserCacheTest(t, UserCacheConfig{TTL: 5 * time.Second, Entries: 2, StaleMax: time.Minute})
	ctx := t.Context()
	for range 10 {
		if s, err := c.User(ctx, "1"); err != nil || s.UserID != "1" {
			t.Fatalf("User(1) = %+v, %v", s, err)
		}
	}
	if n := f.count("1"); n != 1 {
		t.Errorf("10 calls within the TTL made %d lookups, want 1", n)
	}
	clk.advance(5 * time.Second)
	if s, _ := c.User(ctx, "1"); s.UserID != "1" || f.count("1") != 2 {
		t.Errorf("at the TTL: %+v after %d lookups, want a second lookup", s, f.count("1"))
	}

	// Unknown keys: anonymous, cached apart, never evicting user 1.
	for _, k := range []string{"99", "98", "97", "96", "not-a-key"} {
		if s, err := c.User(ctx, k); err != nil || s.Authenticated {
			t.Fatalf("User(%q) = %+v, %v; want anonymous", k, s, err)
		}
	}
	if _, err := c.User(ctx, "96"); err != nil || f.count("96") != 1 {
		t.Errorf("an unknown key was looked up %d times within the TTL, want 1", f.count("96"))
	}
	if _, _ = c.User(ctx, "1"); f.count("1") != 2 {
		t.Errorf("unknown keys evicted user 1 (%d lookups)", f.count("1"))
	}
	if s, _ := c.User(ctx, strings.Repeat("1", maxUserKey+1)); s.Authenticated || len(f.calls) != 6 {
		t.Errorf("an overlong key: %+v, %d keys looked up; want anonymous without a lookup", s, len(f.calls))
	}

	// Outage: user 1 is served stale until a minute after its last check.
	f.mu.Lock()
	f.down = true
	f.mu.Unlock()
	clk.advance(6 * time.Second)
	if s, err := c.User(ctx, "1"); err != nil || s.UserID != "1" || !s.Stale {
		t.Errorf("during an outage: %+v, %v; want user 1 marked stale", s, err)
	}
	if s, err := c.User(ctx, "2"); err == nil || s.Authenticated {
		t.Errorf("a user never seen, during an outage: %+v, %v; want anonymous and the error", s, err)
	}
	clk.advance(time.Minute)
	if s, err := c.User(ctx, "1"); err == nil || s.Authenticated {
		t.Errorf("past the stale limit: %+v, %v; want anonymous", s, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP flagproxy_user_cache_stale_total Users served from the cache past their TTL, marked stale, because the database could not be read.
# TYPE flagproxy_user_cache_stale_total counter
flagproxy_user_cache_stale_total 1
# HELP flagproxy_user_lookup_failures_total Users asked for by primary key served as anonymous because the lookup failed (database_error) or its budget was spent (limited).
# TYPE flagproxy_user_lookup_failures_total counter
flagproxy_user_lookup_failures_total{reason="database_error"} 2
flagproxy_user_lookup_failures_total{reason="limited"} 0
`), "flagproxy_user_cache_stale_total", "flagproxy_user_lookup_failures_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestUserCacheBudget: lookups of keys not cached share the budget; a call
// that cannot get a token within the lookup timeout is anonymous, and
// re-checks of known users spend nothing. The next token is 1,000 s away,
// so the limiter refuses at once, well inside the timeout; the timeout is
// long so that a call descheduled on a busy machine still gets the burst's
// token (with 10 ms, the first call failed once in CI).
func TestUserCacheBudget(t *testing.T) {
	c, f, clk, reg := newUserCacheTest(t, UserCacheConfig{LookupsPerSecond: 0.001, LookupTimeout: 5 * time.Second})
	ctx := t.Context()
	if s, err := c.User(ctx, "1"); err != nil || s.UserID != "1" { // the one burst token
		t.Fatalf("first lookup: %+v, %v", s, err)
	}
	if s, err := c.User(ctx, "2"); err == nil || s.Authenticated || f.count("2") != 0 {
		t.Errorf("beyond the budget: %+v, %v, %d lookups; want anonymous without a lookup", s, err, f.count("2"))
	}
	clk.advance(time.Hour)
	if s, err := c.User(ctx, "1"); err != nil || s.UserID != "1" || f.count("1") != 2 {
		t.Errorf("a known user's re-check: %+v, %v after %d lookups; want it looked up outside the budget", s, err, f.count("1"))
	}
	if got := testutil.ToFloat64(c.failures.WithLabelValues("limited")); got != 1 {
		t.Errorf("limited failures = %v, want 1", got)
	}
	_ = reg
}
