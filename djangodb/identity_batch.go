package djangodb

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// lookup is one session value on its way to, or in, a batch. Every request
// for the same value shares it.
type lookup struct {
	key     [32]byte
	value   string
	known   bool      // a re-check of a known session: outside the budget
	due     time.Time // when its batch must start at the latest
	waiters int       // requests waiting for it; 0 for a background re-check
	asked   bool      // a request waited for it (and is its session's latest use)
	started bool      // in a running batch
	done    chan struct{}
	res     Resolution // set before done is closed
}

// batcher groups lookups into batches for SessionResolver.ResolveBatch. It
// runs a goroutine only while lookups are queued; it needs no shutdown.
type batcher struct {
	c       *IdentityCache
	limiter *rate.Limiter
	slots   chan struct{} // one per running batch
	wake    chan struct{} // the queue changed

	mu      sync.Mutex
	calls   map[[32]byte]*lookup // queued or running, by key
	known   []*lookup            // queued re-checks of known sessions
	unknown []*lookup            // queued lookups of sessions not known
	urgent  time.Time            // earliest due of a known lookup moved earlier
	running bool                 // the flush goroutine exists
}

func newBatcher(c *IdentityCache, limiter *rate.Limiter) *batcher {
	return &batcher{
		c:       c,
		limiter: limiter,
		slots:   make(chan struct{}, maxConcurrentLookups),
		wake:    make(chan struct{}, 1),
		calls:   map[[32]byte]*lookup{},
	}
}

// recheck queues a background re-check of a known session, to start by
// due, unless one is queued or running.
func (b *batcher) recheck(key [32]byte, value string, due time.Time) {
	b.recheckAll([]recheck{{key: key, value: value}}, due)
}

// recheck is a known session to re-check. used makes its answer count as
// used, as a request's lookup does, so that the answer's own re-check is
// made: an early re-check must not stand in for the one a use called for.
type recheck struct {
	key   [32]byte
	value string
	used  bool
}

// recheckAll queues re-checks of known sessions, to start by due, at once
// (so that they go in the same batches); one already queued is kept, to
// start by due at the latest.
func (b *batcher) recheckAll(rs []recheck, due time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range rs {
		if l := b.calls[r.key]; l != nil {
			l.asked = l.asked || r.used
			if !l.started && due.Before(l.due) {
				l.due = due
				if b.urgent.IsZero() || due.Before(b.urgent) {
					b.urgent = due
				}
			}
			continue
		}
		l := &lookup{key: r.key, value: r.value, known: true, due: due, asked: r.used, done: make(chan struct{})}
		b.calls[r.key] = l
		b.known = append(b.known, l)
	}
	b.kick()
}

// lookup returns the lookup of key for a request to wait on, joining the
// one queued or running; nil when too many lookups of unknown sessions
// are waiting already.
func (b *batcher) lookup(key [32]byte, value string, known bool) *lookup {
	b.mu.Lock()
	defer b.mu.Unlock()
	due := time.Now().Add(b.c.cfg.BatchWait)
	if l := b.calls[key]; l != nil {
		l.waiters++
		l.asked = true
		if !l.started && due.Before(l.due) {
			l.due = due
			if l.known && (b.urgent.IsZero() || due.Before(b.urgent)) {
				b.urgent = due
			}
			b.kick()
		}
		return l
	}
	if !known && len(b.unknown) >= b.c.cfg.Entries {
		return nil
	}
	l := &lookup{key: key, value: value, known: known, due: due, waiters: 1, asked: true, done: make(chan struct{})}
	b.calls[key] = l
	if known {
		b.known = append(b.known, l)
		if b.urgent.IsZero() || due.Before(b.urgent) {
			b.urgent = due
		}
	} else {
		b.unknown = append(b.unknown, l)
	}
	b.kick()
	return l
}

// kick starts the flush goroutine, or wakes it. b.mu is held.
func (b *batcher) kick() {
	if !b.running {
		b.running = true
		go b.flush()
		return
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// wait waits for l's answer, at most timeout, or until ctx ends.
func (b *batcher) wait(ctx context.Context, l *lookup, timeout time.Duration) (Resolution, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-l.done:
		return l.res, nil
	case <-t.C:
		err = errLookupTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	b.mu.Lock()
	l.waiters--
	b.mu.Unlock()
	return Resolution{Reason: ReasonDatabaseError, Err: err}, err
}

// flush forms and starts batches while lookups are queued.
func (b *batcher) flush() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	sleep := func(d time.Duration) {
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-b.wake:
			timer.Stop()
		}
	}
	for {
		b.mu.Lock()
		b.dropAbandoned()
		if len(b.known) == 0 && len(b.unknown) == 0 {
			b.running = false
			b.urgent = time.Time{}
			b.mu.Unlock()
			return
		}
		d := b.untilDue(time.Now())
		b.mu.Unlock()
		if d > 0 {
			sleep(d)
			continue
		}
		// Wait for a running batch to end: meanwhile the next one grows.
		b.slots <- struct{}{}
		b.mu.Lock()
		batch, tokenWait := b.take(time.Now())
		b.mu.Unlock()
		if len(batch) == 0 {
			<-b.slots
			if tokenWait > 0 {
				sleep(tokenWait)
			}
			continue
		}
		go b.run(batch)
	}
}

// dropAbandoned removes, from the head of the queue of unknown sessions,
// lookups no request waits for any more. b.mu is held.
func (b *batcher) dropAbandoned() {
	for len(b.unknown) > 0 && b.unknown[0].waiters <= 0 {
		delete(b.calls, b.unknown[0].key)
		b.unknown[0] = nil
		b.unknown = b.unknown[1:]
	}
}

// untilDue returns how long until a batch must start; 0 if now. b.mu is
// held.
func (b *batcher) untilDue(now time.Time) time.Duration {
	size := b.c.cfg.BatchSize
	newMax := min(size, maxNewPerBatch)
	if len(b.known) >= size || len(b.unknown) >= newMax || len(b.known)+len(b.unknown) >= size {
		return 0
	}
	var due time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	if len(b.known) > 0 {
		earlier(b.known[0].due)
		earlier(b.urgent)
	}
	if len(b.unknown) > 0 {
		earlier(b.unknown[0].due)
	}
	return max(due.Sub(now), 0)
}

// take removes the next batch from the queues: known sessions first, then
// unknown ones (at most maxNewPerBatch, and only if the budget has a token
// for the batch). With nothing to take, it returns how long until the
// budget has a token. b.mu is held.
func (b *batcher) take(now time.Time) ([]*lookup, time.Duration) {
	size := b.c.cfg.BatchSize
	n := min(len(b.known), size)
	batch := make([]*lookup, 0, min(size, len(b.known)+len(b.unknown)))
	batch = append(batch, b.known[:n]...)
	clear(b.known[:n])
	b.known = b.known[n:]
	if len(b.known) == 0 {
		b.urgent = time.Time{}
	}
	var tokenWait time.Duration
	if room := min(size-len(batch), maxNewPerBatch); room > 0 && len(b.unknown) > 0 {
		if b.limiter.AllowN(now, 1) {
			i := 0
			for ; i < len(b.unknown) && room > 0; i++ {
				l := b.unknown[i]
				b.unknown[i] = nil
				if l.waiters <= 0 {
					delete(b.calls, l.key)
					continue
				}
				batch = append(batch, l)
				room--
			}
			b.unknown = b.unknown[i:]
		} else if len(batch) == 0 {
			lim := float64(b.limiter.Limit())
			tokenWait = time.Duration((1 - b.limiter.TokensAt(now)) / lim * float64(time.Second))
			tokenWait = max(tokenWait, time.Millisecond)
		}
	}
	for _, l := range batch {
		l.started = true
	}
	return batch, tokenWait
}

// dueOf returns when batch was due: the earliest due of its re-checks,
// or now if it holds none (a new session's wait for its batch is not the
// database's).
func dueOf(batch []*lookup) time.Time {
	due := time.Now()
	for _, l := range batch {
		if l.known && l.due.Before(due) {
			due = l.due
		}
	}
	return due
}

// run resolves a batch and hands each answer to its lookup; it releases
// the batch's slot.
func (b *batcher) run(batch []*lookup) {
	defer func() { <-b.slots }()
	c := b.c
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.LookupTimeout)
	defer cancel()
	values := make([]string, len(batch))
	for i, l := range batch {
		values[i] = l.value
	}
	checked, due := c.now(), dueOf(batch)
	out, queries := c.cfg.Resolver.ResolveBatch(ctx, values)
	c.margin.observe(due, time.Now())
	c.queries.Add(float64(queries))
	c.lookups.Add(float64(len(batch)))
	if len(out) != len(batch) {
		// An answer out of place could be another visitor's: use none.
		err := errors.New("identity lookup: the resolver answered a batch out of shape")
		out = make([]Resolution, len(batch))
		for i := range out {
			out[i] = Resolution{Reason: ReasonDatabaseError, Err: err}
		}
	}
	asked := make([]bool, len(batch))
	b.mu.Lock()
	for i, l := range batch {
		asked[i] = l.asked
	}
	b.mu.Unlock()
	var failed int
	var firstErr error
	for i, l := range batch {
		if out[i].Err != nil {
			failed++
			firstErr = cmp.Or(firstErr, out[i].Err)
		}
		c.store(l.key, l.value, out[i], checked, asked[i], !l.known)
		c.watchKey(out[i].Reason)
	}
	if failed > 0 {
		c.batchFailed(failed, firstErr)
	}
	b.mu.Lock()
	for i, l := range batch {
		delete(b.calls, l.key)
		l.res = out[i]
	}
	b.mu.Unlock()
	for _, l := range batch {
		close(l.done)
	}
}
