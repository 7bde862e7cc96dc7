package djangodb

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// fakeLoader returns the data and errors queued in it, in order; the last
// entry repeats.
type fakeLoader struct {
	mu    sync.Mutex
	steps []loadStep
	calls int
}

type loadStep struct {
	data engine.Data
	err  error
}

func (f *fakeLoader) Load(context.Context) (engine.Data, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.steps[min(f.calls, len(f.steps)-1)]
	f.calls++
	return s.data, s.err
}

// dataWith is a snapshot's data with one switch, on or off, and its version.
func dataWith(t *testing.T, on bool) (engine.Data, string) {
	t.Helper()
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle}
	d.Switches = []engine.Switch{{Name: "s", Active: on}}
	s, err := engine.NewSnapshot(d)
	if err != nil {
		t.Fatal(err)
	}
	return d, s.Version()
}

// version returns the published snapshot's version, "" for none.
func version(st *engine.Store) string {
	if s := st.Load(); s != nil {
		return s.Version()
	}
	return ""
}

// TestPollerKeepsLastGoodSnapshot runs the poller in a synctest bubble: it
// loads at once, then once per interval; a failed load is counted and leaves
// the last good snapshot published; Run returns when its context ends and
// leaves no goroutine behind (synctest fails on a leak).
func TestPollerKeepsLastGoodSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		on, onVersion := dataWith(t, true)
		off, offVersion := dataWith(t, false)
		boom := errors.New("database is down")
		loader := &fakeLoader{steps: []loadStep{{data: on}, {err: boom}, {err: boom}, {data: off}}}
		var store engine.Store
		reg := prometheus.NewRegistry()
		p, err := NewPoller(PollerConfig{Loader: loader, Sink: &store, Interval: time.Second, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()

		synctest.Wait()
		if version(&store) != onVersion {
			t.Fatal("first snapshot not published at start")
		}
		if st := p.Status(); st.LastSuccess.IsZero() || !st.FailingSince.IsZero() || st.Version != onVersion {
			t.Errorf("status after the first load = %+v", st)
		}
		firstLoad := store.LoadedAt()
		time.Sleep(p.offset + time.Second)
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		if version(&store) != onVersion || !store.LoadedAt().Equal(firstLoad) {
			t.Errorf("after two failed loads: snapshot %p loaded at %v, want the first one kept", store.Load(), store.LoadedAt())
		}
		if got := testutil.ToFloat64(p.failures); got != 2 {
			t.Errorf("load errors = %v, want 2", got)
		}
		st := p.Status()
		if st.LastError != boom.Error() || st.FailingSince.IsZero() || st.LastErrorAt.Before(st.FailingSince) {
			t.Errorf("status while failing = %+v", st)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if version(&store) != offVersion {
			t.Error("recovered load not published")
		}
		if st := p.Status(); !st.FailingSince.IsZero() || st.LastError != boom.Error() || st.Version != offVersion {
			t.Errorf("status after recovery = %+v", st)
		}
		if got := testutil.ToFloat64(p.loads); got != 4 {
			t.Errorf("loads = %v, want 4", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	})
}

func TestPollerJitterIsDeterministicAndBounded(t *testing.T) {
	mk := func(key string) time.Duration {
		p, err := NewPoller(PollerConfig{Loader: &fakeLoader{}, Sink: &engine.Store{}, Interval: time.Second, JitterKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return p.offset
	}
	if first, second := mk("a:8080"), mk("a:8080"); first != second {
		t.Errorf("same key, different offsets: %v and %v", first, second)
	}
	seen := map[time.Duration]bool{}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		o := mk(k)
		if o < 0 || o >= 100*time.Millisecond {
			t.Errorf("offset %v for %q outside [0, interval/10)", o, k)
		}
		seen[o] = true
	}
	if len(seen) < 2 {
		t.Error("five keys gave one offset")
	}
}

// TestPollerSeesCommittedUpdate is the real thing on SQLite: a committed
// UPDATE reaches the store within two seconds with the default interval.
func TestPollerSeesCommittedUpdate(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		db.Exec(t, `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES ('s', ?, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`, false)
		var store engine.Store
		p, err := NewPoller(PollerConfig{Loader: db.Loader(t, Config{}), Sink: &store})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go p.Run(ctx)
		waitFor(t, 2*time.Second, func() bool { return store.Load() != nil })
		before := store.Load().Version()
		db.Exec(t, `UPDATE waffle_switch SET active = ? WHERE name = 's'`, true)
		start := time.Now()
		waitFor(t, 2*time.Second, func() bool { return store.Load().Version() != before })
		t.Logf("%s: update visible after %v", db.Name, time.Since(start).Round(time.Millisecond))
		if d := store.Load().Evaluate(&engine.Request{}, zeroRand{}); !d.Switches[0].On {
			t.Error("switch still off after the update")
		}
	})
}

func waitFor(t *testing.T, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
