package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// Defaults for HistoryConfig.
const (
	DefaultHistoryPerName = 20
	DefaultHistoryNames   = 1000
)

// Unknown is the author of a change no admin log entry accounts for.
const Unknown = "unknown"

// Publisher receives every snapshot a load produced; *engine.Store is one.
type Publisher interface {
	Publish(s *engine.Snapshot, at time.Time)
}

// HistoryConfig configures a History.
type HistoryConfig struct {
	// Next receives every snapshot after the History has compared it;
	// required.
	Next Publisher
	// PerName bounds the changes kept per name, Names the names kept (the
	// name changed least recently goes first).
	PerName, Names int
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

// ChangeRecord is one change in a name's history.
type ChangeRecord struct {
	engine.Change
	// SeenAt is when flagproxy loaded the snapshot that shows the change,
	// and Version that snapshot's version.
	SeenAt  time.Time `json:"seen_at"`
	Version string    `json:"snapshot_version"`
	// By is the username of the admin user who made the change, or
	// "unknown"; UserID, ChangedAt and AdminMessage come from the same
	// django_admin_log entry.
	By           string    `json:"by"`
	UserID       string    `json:"user_id,omitempty"`
	ChangedAt    time.Time `json:"changed_at,omitzero"`
	AdminMessage string    `json:"admin_message,omitempty"`
}

// History compares each snapshot published through it with the one
// before, logs and counts every change, and keeps the last changes of
// each name. The first snapshot (loaded or restored) is not a change. It
// is safe for concurrent use.
type History struct {
	next    Publisher
	log     *slog.Logger
	changes *prometheus.CounterVec
	perName int
	names   int

	mu     sync.Mutex
	prev   *engine.Snapshot
	byName map[string][]ChangeRecord // oldest first
}

// NewHistory checks cfg and returns a History.
func NewHistory(cfg HistoryConfig) (*History, error) {
	if cfg.Next == nil {
		return nil, errors.New("history: no next publisher")
	}
	if cfg.PerName < 0 || cfg.Names < 0 {
		return nil, fmt.Errorf("history: negative bound %d, %d", cfg.PerName, cfg.Names)
	}
	h := &History{next: cfg.Next, log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		perName: cmp.Or(cfg.PerName, DefaultHistoryPerName), names: cmp.Or(cfg.Names, DefaultHistoryNames),
		byName: make(map[string][]ChangeRecord)}
	h.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagproxy_flag_changes_total",
		Help: "Changes seen between consecutive snapshots (one per added or removed name and per changed field), by kind, source and author (admin: a django_admin_log entry accounts for it; unknown).",
	}, []string{"kind", "source", "author"})
	if r := cfg.Registerer; r != nil {
		if err := r.Register(h.changes); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return h, nil
}

// Restore makes snap, read from a snapshot file at start, the snapshot
// the first load is compared with; it does nothing once a snapshot is
// there.
func (h *History) Restore(snap *engine.Snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.prev == nil {
		h.prev = snap
	}
}

// Publish hands snap on to Next, then records how it differs from the
// snapshot published before it.
func (h *History) Publish(snap *engine.Snapshot, at time.Time) {
	h.next.Publish(snap, at)
	if snap == nil {
		return
	}
	h.mu.Lock()
	prev := h.prev
	h.prev = snap
	h.mu.Unlock()
	if prev == nil || prev == snap || (prev.Version() == snap.Version() && prev.InfoDigest() == snap.InfoDigest()) {
		return
	}
	data := snap.Data()
	for _, c := range engine.Diff(prev.Data(), data) {
		h.record(h.attribute(c, data.AdminLog, snap.Version(), at))
	}
}

// attribute makes the record of c, with its author when the admin log
// names one.
func (h *History) attribute(c engine.Change, log []engine.AdminEntry, version string, at time.Time) ChangeRecord {
	r := ChangeRecord{Change: c, SeenAt: at.UTC(), Version: version, By: Unknown}
	if e, ok := engine.Attribute(c, log); ok {
		r.By, r.UserID, r.ChangedAt, r.AdminMessage = cmp.Or(e.Username, "user "+e.UserID), e.UserID, e.Time.UTC(), e.Message
	}
	return r
}

// record logs, counts and keeps one change.
func (h *History) record(r ChangeRecord) {
	author := "admin"
	if r.UserID == "" {
		author = Unknown
	}
	h.changes.WithLabelValues(r.Kind.String(), string(r.Source), author).Inc()
	attrs := []slog.Attr{slog.String("kind", r.Kind.String()), slog.String("source", string(r.Source)), slog.String("flag", r.Name),
		slog.String("op", string(r.Op)), slog.String("field", r.Field), slog.String("old", r.Old), slog.String("new", r.New),
		slog.String("by", r.By), slog.String("snapshot_version", r.Version)}
	if author != Unknown {
		attrs = append(attrs, slog.String("user_id", r.UserID), slog.Time("changed_at", r.ChangedAt))
	}
	h.log.LogAttrs(context.Background(), slog.LevelInfo, "flag changed", attrs...)
	h.mu.Lock()
	defer h.mu.Unlock()
	list, known := h.byName[r.Name]
	if !known && len(h.byName) >= h.names {
		h.evict()
	}
	list = append(list, r)
	if len(list) > h.perName {
		list = slices.Delete(list, 0, len(list)-h.perName)
	}
	h.byName[r.Name] = list
}

// evict drops the name whose last change is the oldest.
func (h *History) evict() {
	var oldest string
	var at time.Time
	found := false
	for name, list := range h.byName {
		if last := list[len(list)-1].SeenAt; !found || last.Before(at) {
			oldest, at, found = name, last, true
		}
	}
	delete(h.byName, oldest)
}

// History returns the changes kept for name, of every kind, newest first.
func (h *History) History(name string) []ChangeRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := slices.Clone(h.byName[name])
	slices.Reverse(out)
	return out
}
