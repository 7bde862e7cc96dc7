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

// fakeChanges is a ChangeDetector whose answers the test sets; as a
// Notifier its Run hands the wake function to the test.
type fakeChanges struct {
	mu      sync.Mutex
	changed bool
	err     error
	checks  int
	loaded  int
	wake    chan func()
}

func (f *fakeChanges) Changed(context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	return f.changed, f.err
}

func (f *fakeChanges) Loaded() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loaded++
	f.changed = false
}

func (f *fakeChanges) set(changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changed, f.err = changed, err
}

func (f *fakeChanges) counts() (checks, loaded int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checks, f.loaded
}

// fakeNotifier adds Run to fakeChanges.
type fakeNotifier struct{ *fakeChanges }

func (f fakeNotifier) Run(ctx context.Context, wake func()) error {
	f.wake <- wake
	<-ctx.Done()
	return nil
}

func (f *fakeLoader) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// runPoller starts p.Run and returns a function that stops it and checks
// that it returned nil.
func runPoller(t *testing.T, p *Poller) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	}
}

// TestPollerSkipsLoadsWhileUnchanged: with a ChangeDetector, a poll of an
// unchanged database loads nothing but confirms the snapshot (LoadedAt
// moves, so the header does not turn stale); a change, a failed check, a
// failing last load and the full-reload interval each make a poll load, and
// only successful loads are reported to Loaded.
func TestPollerSkipsLoadsWhileUnchanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		on, _ := dataWith(t, true)
		boom := errors.New("database is down")
		loader := &fakeLoader{steps: []loadStep{{data: on}}}
		changes := &fakeChanges{}
		var store engine.Store
		reg := prometheus.NewRegistry()
		p, err := NewPoller(PollerConfig{Loader: loader, Sink: &store, Interval: time.Second, Changes: changes,
			FullReloadInterval: 10 * time.Second, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		stop := runPoller(t, p)
		defer stop()
		synctest.Wait()
		if loader.count() != 1 || store.Load() == nil {
			t.Fatalf("first poll: %d loads, snapshot %v; want one load, published", loader.count(), store.Load())
		}
		first := store.LoadedAt()
		time.Sleep(p.offset + 3*time.Second + time.Millisecond) // three polls, nothing changed
		synctest.Wait()
		if n := loader.count(); n != 1 {
			t.Errorf("unchanged polls loaded %d times, want none", n-1)
		}
		if !store.LoadedAt().After(first) {
			t.Error("unchanged polls did not confirm the snapshot (LoadedAt did not move)")
		}
		if got := testutil.ToFloat64(p.checks.WithLabelValues(checkUnchanged)); got != 4 {
			t.Errorf("unchanged checks = %v, want 4 (the first poll's and three)", got)
		}

		changes.set(true, nil)
		time.Sleep(time.Second)
		synctest.Wait()
		if n := loader.count(); n != 2 {
			t.Errorf("after a change: %d loads, want 2", n)
		}
		if _, loaded := changes.counts(); loaded != 2 {
			t.Errorf("Loaded called %d times, want 2", loaded)
		}

		changes.set(false, boom) // a failed check loads
		time.Sleep(time.Second)
		synctest.Wait()
		if n := loader.count(); n != 3 {
			t.Errorf("after a failed check: %d loads, want 3", n)
		}

		// A failing load: every poll loads until one succeeds, and Loaded is
		// not called for the failures.
		changes.set(false, nil)
		loader.mu.Lock()
		loader.steps = append(loader.steps[:0:0], loadStep{err: boom}, loadStep{err: boom}, loadStep{data: on})
		loader.calls = 0
		loader.mu.Unlock()
		_, loadedBefore := changes.counts()
		changes.set(true, nil)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n := loader.count(); n != 3 {
			t.Errorf("while loads fail: %d loads in three polls, want 3", n)
		}
		if _, loaded := changes.counts(); loaded != loadedBefore+1 {
			t.Errorf("Loaded called %d times for two failures and a success, want 1", loaded-loadedBefore)
		}

		// The safety net: no change for the full-reload interval still
		// loads.
		loader.mu.Lock()
		loader.calls = 0
		loader.mu.Unlock()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := loader.count(); n != 1 {
			t.Errorf("ten unchanged seconds with a 10s full-reload interval: %d loads, want 1", n)
		}
	})
}

// TestPollerLoadsAtOnceWhenNotified: a Notifier's wake-up polls at once,
// without waiting for the interval, and wake-ups that arrive during a load
// are coalesced into one more poll. Run stops the Notifier when it returns
// (synctest fails on a leaked goroutine).
func TestPollerLoadsAtOnceWhenNotified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		on, _ := dataWith(t, true)
		block := make(chan struct{})
		loader := &blockingLoader{data: on, block: block}
		changes := &fakeChanges{wake: make(chan func(), 1)}
		var store engine.Store
		p, err := NewPoller(PollerConfig{Loader: loader, Sink: &store, Interval: time.Hour, Changes: fakeNotifier{changes}})
		if err != nil {
			t.Fatal(err)
		}
		stop := runPoller(t, p)
		defer stop()
		wake := <-changes.wake
		block <- struct{}{} // the first load
		time.Sleep(time.Second)
		synctest.Wait()
		start := time.Now()
		changes.set(true, nil)
		wake()
		block <- struct{}{} // the load the wake-up started, at once
		if d := time.Since(start); d != 0 {
			t.Errorf("notified load started after %v, want at once", d)
		}
		// A burst while a load runs: one more poll, wakeGap after the
		// start of the last.
		time.Sleep(time.Second)
		changes.set(true, nil)
		wake()
		synctest.Wait() // the poller is blocked in its load
		for range 10 {
			wake()
		}
		start = time.Now()
		block <- struct{}{}
		synctest.Wait() // Loaded has run; the poller waits for wakeGap
		changes.set(true, nil)
		block <- struct{}{}
		if d := time.Since(start); d != wakeGap {
			t.Errorf("the burst's poll came %v after the load before, want %v", d, wakeGap)
		}
		synctest.Wait()
		if n := loader.count(); n != 4 {
			t.Errorf("%d loads for the start, one notification and a burst during a load; want 4", n)
		}
		// A steady stream of notifications, one a millisecond for 200ms:
		// one load per wakeGap, not one per notification.
		for range 200 {
			changes.set(true, nil)
			wake()
			select {
			case block <- struct{}{}:
			case <-time.After(time.Millisecond):
			}
		}
		synctest.Wait()
		if n, want := loader.count()-4, int(200*time.Millisecond/wakeGap); n < want-1 || n > want+1 {
			t.Errorf("200 notifications in 200ms: %d loads, want about %d", n, want)
		}
		// Nothing changed since: a wake-up checks and does not load.
		time.Sleep(time.Second)
		changes.set(false, nil)
		before := loader.count()
		wake()
		synctest.Wait()
		if n := loader.count(); n != before {
			t.Errorf("a wake-up without a change loaded (%d loads)", n-before)
		}
	})
}

// blockingLoader loads data once per receive on block.
type blockingLoader struct {
	data  engine.Data
	block chan struct{}
	mu    sync.Mutex
	calls int
}

func (b *blockingLoader) Load(ctx context.Context) (engine.Data, error) {
	select {
	case <-b.block:
	case <-ctx.Done():
		return engine.Data{}, ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	return b.data, nil
}

func (b *blockingLoader) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}
