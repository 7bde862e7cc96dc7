package djangodb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// The names flagproxy_django's migration and `manage.py flagproxy_triggers`
// create (flagproxy_django/notify.py): a statement-level AFTER INSERT OR
// UPDATE OR DELETE OR TRUNCATE trigger NotifyTrigger on each flag table
// runs pg_notify(NotifyChannel, TG_TABLE_NAME), delivered on commit.
const (
	NotifyChannel = "flagproxy_flags"
	NotifyTrigger = "flagproxy_notify"
	// TriggersPayload is sent on NotifyChannel after triggers were
	// (re)installed: listeners check the triggers again at once.
	TriggersPayload = "flagproxy-triggers"
	// probePrefix starts the payload of the test notification a listener
	// sends itself to learn whether notifications reach it.
	probePrefix = "flagproxy-probe:"
)

// Timing of the listener.
const (
	// probeTimeout is how long the test notification may take.
	probeTimeout = 2 * time.Second
	// listenRetryMin and listenRetryMax bound the wait before listening
	// again after LISTEN failed or no test notification came.
	listenRetryMin = 5 * time.Second
	listenRetryMax = 5 * time.Minute
	// reconnectMin and reconnectMax are lib/pq's reconnect backoff after
	// the listening connection is lost.
	reconnectMin = 250 * time.Millisecond
	reconnectMax = 30 * time.Second
)

// listenState is what the listener knows, guarded by Watch.mu.
type listenState struct {
	// listening is true while LISTEN is in effect on a connection on
	// which the test notification arrived.
	listening bool
	// epoch counts the times listening became true: notifications of an
	// earlier connection may have been lost.
	epoch uint64
	// gen counts the change notifications received.
	gen uint64
	// lastPing is when the last successful ping of the listening
	// connection was sent.
	lastPing time.Time
	// problem says why the listener is not listening; "" while it starts.
	problem string
}

// healthy reports whether notifications arrive: listening, with a ping
// answered within the last three ping intervals. Otherwise it says why.
func (s *listenState) healthy(ping time.Duration) (bool, string) {
	switch {
	case !s.listening:
		return false, s.problem
	case time.Since(s.lastPing) > 3*ping:
		return false, ""
	}
	return true, ""
}

// listen keeps a LISTEN connection until ctx is done. A session that ends
// (LISTEN refused, no test notification, a ping that does not return) is
// started again after a backoff; a lost connection is re-established by
// lib/pq's Listener.
func (w *Watch) listen(ctx context.Context, wake func()) error {
	backoff := listenRetryMin
	for {
		worked, err := w.session(ctx, wake)
		if ctx.Err() != nil {
			return nil
		}
		w.setListening(false, err.Error())
		if worked {
			backoff = listenRetryMin
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, listenRetryMax)
	}
}

// setListening records the listener's state and re-evaluates whether
// notifications are active. A new listening state starts a new epoch.
func (w *Watch) setListening(on bool, problem string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if on && !w.lis.listening {
		w.lis.epoch++
		w.lis.lastPing = time.Now()
	}
	w.lis.listening, w.lis.problem = on, problem
	w.evaluateLocked()
}

// errPingTimeout ends a session whose listening connection stopped
// answering.
var errPingTimeout = errors.New("the listening connection stopped answering pings")

// session runs one pq.Listener: LISTEN, the test notification, then
// notifications and pings until something fails. It reports whether
// notifications worked at some point.
func (w *Watch) session(ctx context.Context, wake func()) (worked bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// ended keeps a closing listener's late events from overwriting the
	// next session's state.
	var ended atomic.Bool
	events := func(ev pq.ListenerEventType, err error) {
		if ended.Load() {
			return
		}
		switch ev {
		case pq.ListenerEventDisconnected:
			w.setListening(false, fmt.Sprintf("listening connection lost: %v", err))
		case pq.ListenerEventConnectionAttemptFailed:
			w.setListening(false, fmt.Sprintf("cannot connect to LISTEN: %v", err))
		}
	}
	l := pq.NewListener(w.notifyDSN, reconnectMin, reconnectMax, events)
	defer func() {
		ended.Store(true)
		cancel()
		// Close waits for a query in flight on the listening connection
		// (LISTEN, a ping), which on a connection that died silently lasts
		// until TCP gives up: do not hold Run up. lib/pq blocks on a full
		// Notify channel, so drain it until it closes.
		go func() {
			l.Close()
			for range l.Notify {
			}
		}()
	}()
	// The goroutines below end when l is closed; neither blocks on a send.
	listened := make(chan error, 1)
	go func() { listened <- l.Listen(NotifyChannel) }()
	pings := make(chan time.Time, 1) // the start of each successful ping
	go w.pinger(ctx, l, pings)

	probe := ""
	probeTimer := time.NewTimer(time.Hour)
	probeTimer.Stop()
	defer probeTimer.Stop()
	sendProbe := func() error {
		probe = probePrefix + randomHex()
		probeTimer.Reset(probeTimeout)
		pctx, cancel := context.WithTimeout(ctx, w.timeout)
		defer cancel()
		if _, err := w.db.ExecContext(pctx, `SELECT pg_notify($1, $2)`, NotifyChannel, probe); err != nil {
			return fmt.Errorf("send a test notification: %w", err)
		}
		return nil
	}
	watchdog := time.NewTicker(w.ping)
	defer watchdog.Stop()
	for {
		select {
		case <-ctx.Done():
			return worked, ctx.Err()
		case err := <-listened:
			if err != nil {
				return worked, fmt.Errorf("LISTEN %s: %w", NotifyChannel, err)
			}
			if err := sendProbe(); err != nil {
				return worked, err
			}
		case n, ok := <-l.Notify:
			switch {
			case !ok:
				return worked, errors.New("listener closed")
			case n == nil:
				// Reconnected: notifications may have been lost while the
				// connection was down. Test the new one, then load.
				w.setListening(false, "")
				if err := sendProbe(); err != nil {
					return worked, err
				}
			case probe != "" && n.Extra == probe:
				probe = ""
				probeTimer.Stop()
				worked = true
				w.setListening(true, "")
				wake()
			case strings.HasPrefix(n.Extra, probePrefix):
				// another proxy's test notification
			default:
				w.mu.Lock()
				w.lis.gen++
				w.mu.Unlock()
				if n.Extra != TriggersPayload {
					w.notifications.Inc()
				}
				wake()
			}
		case <-probeTimer.C:
			return worked, fmt.Errorf("LISTEN %s succeeded but a test notification did not arrive within %v: "+
				"is a connection pooler in transaction mode (PgBouncer) between flagproxy and PostgreSQL? "+
				"Point --notify-database at PostgreSQL itself, or at a pool in session mode", NotifyChannel, probeTimeout)
		case at := <-pings:
			w.mu.Lock()
			w.lis.lastPing = at
			w.mu.Unlock()
		case <-watchdog.C:
			w.mu.Lock()
			stuck := w.lis.listening && time.Since(w.lis.lastPing) > max(10*time.Second, 5*w.ping)
			w.mu.Unlock()
			if stuck {
				return worked, errPingTimeout
			}
		}
	}
}

// pinger pings the listening connection every ping interval, so that a
// connection that died silently is noticed (and with it, lost
// notifications). It sends the start time of each successful ping.
func (w *Watch) pinger(ctx context.Context, l *pq.Listener, pings chan<- time.Time) {
	t := time.NewTicker(w.ping)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		if l.Ping() != nil {
			continue
		}
		select {
		case pings <- start:
		default:
		}
	}
}

func randomHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
