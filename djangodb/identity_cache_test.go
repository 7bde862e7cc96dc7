package djangodb

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// countingResolver answers from a map and counts its calls.
type countingResolver struct {
	mu    sync.Mutex
	calls int
	users map[string]engine.Subject
	until time.Time
}

func (r *countingResolver) Plausible(v string) bool { return len(v) >= 8 }

func (r *countingResolver) Resolve(_ context.Context, v string) (engine.Subject, Reason, time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if s, ok := r.users[v]; ok {
		return s, ReasonAuthenticated, r.until, nil
	}
	return engine.Anonymous, ReasonNoRow, time.Time{}, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func cookies(v string) engine.Values { return engine.Params{"sessionid": v} }

func TestIdentityCacheTTLAndExpiry(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	alice := engine.Subject{UserID: "1", Authenticated: true, Active: true}
	r := &countingResolver{users: map[string]engine.Subject{"alicesession": alice}}
	c, err := NewIdentityCache(IdentityCacheConfig{Resolver: r, TTL: 5 * time.Second, Now: clk.now, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for range 100 {
		s, err := c.Subject(ctx, cookies("alicesession"))
		if err != nil || s.UserID != "1" {
			t.Fatalf("Subject = %+v, %v", s, err)
		}
	}
	if r.calls != 1 {
		t.Errorf("100 requests made %d lookups, want 1", r.calls)
	}
	clk.advance(5 * time.Second)
	c.Subject(ctx, cookies("alicesession"))
	if r.calls != 2 {
		t.Errorf("after the TTL: %d lookups, want 2", r.calls)
	}

	// A session that expires before the TTL bounds the cached answer.
	r.users["bobsession1"] = alice
	r.until = clk.t.Add(2 * time.Second)
	c.Subject(ctx, cookies("bobsession1"))
	calls := r.calls
	clk.advance(1500 * time.Millisecond)
	c.Subject(ctx, cookies("bobsession1"))
	if r.calls != calls {
		t.Errorf("looked up again before the session's expiry")
	}
	clk.advance(time.Second) // 2.5 s: past the session, within the 5 s TTL
	c.Subject(ctx, cookies("bobsession1"))
	if r.calls != calls+1 {
		t.Errorf("answer kept past the session's expiry")
	}
	if s, _ := c.Subject(ctx, nil); s.Authenticated {
		t.Error("no cookies: want anonymous")
	}
}

// TestIdentityCacheBoundsSprays sends many random session ids: memory stays
// within Entries and database lookups within the rate budget.
func TestIdentityCacheBoundsSprays(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	r := &countingResolver{users: map[string]engine.Subject{"goodsession": {UserID: "1", Authenticated: true, Active: true}}}
	reg := prometheus.NewRegistry()
	c, err := NewIdentityCache(IdentityCacheConfig{Resolver: r, Entries: 100, LookupsPerSecond: 10, Now: clk.now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if s, _ := c.Subject(ctx, cookies("goodsession")); !s.Authenticated {
		t.Fatal("good session not accepted")
	}
	for i := range 10000 {
		c.Subject(ctx, cookies(fmt.Sprintf("random-%08d", i)))
	}
	if r.calls > 1+21 {
		t.Errorf("10000 random ids made %d lookups; the budget is a burst of 21", r.calls)
	}
	if n := c.known.Len() + c.refused.Len(); n > 200 {
		t.Errorf("cache holds %d entries, want at most 2×100", n)
	}
	// The known session's answer falls due during a spray that has used
	// the whole budget: it is looked up again anyway, outside the budget.
	clk.advance(DefaultIdentityTTL)
	for i := range 100 {
		c.Subject(ctx, cookies(fmt.Sprintf("again-%08d", i)))
	}
	if s, _ := c.Subject(ctx, cookies("goodsession")); !s.Authenticated {
		t.Error("a spray made a known user anonymous")
	}
	// Values that cannot be sessions never spend the budget.
	before := r.calls
	for range 1000 {
		c.Subject(ctx, cookies("short"))
	}
	if r.calls != before {
		t.Errorf("implausible values made %d lookups", r.calls-before)
	}
	if got := testutil.ToFloat64(c.rejected.WithLabelValues(string(ReasonLookupsLimited))); got < 9000 {
		t.Errorf("rate-limited rejections = %v", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}
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
	r := &countingResolver{users: map[string]engine.Subject{"0123456789abcdefghijklmnopqrstuv": {UserID: "1", Authenticated: true, Active: true, Groups: []int64{1, 2}}}}
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
