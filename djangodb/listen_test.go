package djangodb

import (
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// dropNotifications is a TCP proxy in front of PostgreSQL that passes
// everything except the server's NotificationResponse messages: LISTEN
// succeeds, and no notification ever arrives, as behind PgBouncer in
// transaction mode. It returns the DSN to connect through it.
func dropNotifications(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if u.Query().Get("sslmode") != "disable" {
		t.Skip("the notification-dropping proxy needs sslmode=disable")
	}
	upstream := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", upstream)
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, client, server)
			mu.Unlock()
			wg.Go(func() {
				io.Copy(server, client)
				server.Close()
			})
			wg.Go(func() {
				defer client.Close()
				// Every server message is a type byte and a length that
				// counts itself (no SSL negotiation with sslmode=disable).
				var head [5]byte
				for {
					if _, err := io.ReadFull(server, head[:]); err != nil {
						return
					}
					body := make([]byte, binary.BigEndian.Uint32(head[1:])-4)
					if _, err := io.ReadFull(server, body); err != nil {
						return
					}
					if head[0] == 'A' {
						continue
					}
					if _, err := client.Write(append(head[:], body...)); err != nil {
						return
					}
				}
			})
		}
	})
	u.Host = ln.Addr().String()
	return u.String()
}

// TestNotifyFallsBackToPolling: when notifications cannot work, flagproxy
// says why in its log, the gauge stays 0, and changes still load by
// polling the fingerprint.
func TestNotifyFallsBackToPolling(t *testing.T) {
	cases := []struct {
		name   string
		dsn    func(t *testing.T, db *testDB) string
		reason string
	}{
		{"listen connection refused", func(t *testing.T, db *testDB) string {
			u, _ := url.Parse(db.Target.DSN)
			u.Host = "127.0.0.1:1"
			return u.String()
		}, "cannot connect to LISTEN"},
		{"notifications do not arrive (PgBouncer in transaction mode)", func(t *testing.T, db *testDB) string {
			return dropNotifications(t, db.Target.DSN)
		}, "a test notification did not arrive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := newPostgres(t, true)
			installTriggers(t, db)
			db.Exec(t, `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES ('s', false, '', now(), now())`)
			var logs logBuffer
			w := startWatched(t, db, WatchConfig{Notify: true, NotifyDSN: c.dsn(t, db), Logger: logs.logger()}, 100*time.Millisecond)
			waitFor(t, 5*time.Second, func() bool {
				return strings.Contains(logs.String(), "change notifications unavailable")
			})
			if line := logLine(logs.String(), "change notifications unavailable"); !strings.Contains(line, c.reason) {
				t.Errorf("log line %q does not say %q", line, c.reason)
			}
			if w.notifyActive() {
				t.Error("flagproxy_snapshot_notify_active is 1")
			}
			db.Exec(t, `UPDATE waffle_switch SET active = true`)
			start := time.Now()
			w.next(t, time.Second)
			t.Logf("change loaded by polling after %v", time.Since(start).Round(time.Millisecond))
		})
	}
}

func logLine(logs, substr string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, substr) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// TestNotifyNeedsTriggers: without the triggers flagproxy polls and says
// which tables lack them; once `manage.py flagproxy_triggers` (here its
// SQL) installs them and announces it, notifications become active at
// once; a trigger dropped later turns them off at the next poll.
func TestNotifyNeedsTriggers(t *testing.T) {
	db := newPostgres(t, true)
	var logs logBuffer
	w := startWatched(t, db, WatchConfig{Notify: true, Logger: logs.logger()}, 200*time.Millisecond)
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "notification triggers missing") })
	line := logLine(logs.String(), "notification triggers missing")
	for _, want := range []string{"waffle_flag", "flags_flagstate", "manage.py flagproxy_triggers"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
	if w.notifyActive() {
		t.Fatal("active without triggers")
	}
	installTriggers(t, db)
	db.Exec(t, `SELECT pg_notify($1, $2)`, NotifyChannel, TriggersPayload)
	start := time.Now()
	waitFor(t, 2*time.Second, w.notifyActive)
	t.Logf("active %v after the triggers were announced", time.Since(start).Round(time.Millisecond))
	db.Exec(t, `DROP TRIGGER `+NotifyTrigger+` ON waffle_switch`)
	waitFor(t, 2*time.Second, func() bool { return !w.notifyActive() })
	if line := logLine(logs.String()[strings.LastIndex(logs.String(), "change notifications active"):], "notification triggers missing"); !strings.Contains(line, "waffle_switch") {
		t.Errorf("after dropping a trigger: log line %q does not name waffle_switch", line)
	}
}

// TestNotifyReconnects: when the server ends the listening connection,
// lib/pq reconnects, flagproxy tests the new connection and loads (changes
// made meanwhile are not lost), and notifications are active again.
func TestNotifyReconnects(t *testing.T) {
	db := newPostgres(t, true)
	installTriggers(t, db)
	db.Exec(t, `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES ('s', false, '', now(), now())`)
	var logs logBuffer
	w := startWatched(t, db, WatchConfig{Notify: true, Logger: logs.logger()}, time.Second)
	waitFor(t, 5*time.Second, w.notifyActive)
	var n int
	err := db.W.Get(&n, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`)
	if err != nil || n != 1 {
		t.Fatalf("terminate the listening backend: %d, %v", n, err)
	}
	db.Exec(t, `UPDATE waffle_switch SET active = true`) // likely while the listener is down
	w.next(t, 3*time.Second)
	waitFor(t, 5*time.Second, func() bool {
		return w.notifyActive() && strings.Contains(logs.String(), "listening connection lost")
	})
	db.Exec(t, `UPDATE waffle_switch SET active = false`)
	start := time.Now()
	w.next(t, time.Second)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("after the reconnect a change took %v", d)
	}
}
