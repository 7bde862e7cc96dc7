package proxy

import (
	"cmp"
	"slices"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/flagproxy/flagproxy/engine"
)

// maxMissing bounds the names kept that the app read but no source
// defines; the least recently read go first. However many names a hostile
// or buggy upstream reports, the log holds at most the names of the
// current snapshot and this many others.
const maxMissing = 1000

// readLog keeps, since start, when each name was last read by the app (as
// reported in ReadsHeader), and the names read that no source defined.
type readLog struct {
	mu      sync.Mutex
	since   time.Time // the first report; zero before any
	last    map[nameKey]time.Time
	missing *lru.Cache[nameKey, time.Time]
	defined definedNames // of the snapshot last recorded against
}

// definedNames answers whether a snapshot defines a name.
type definedNames struct {
	snap     *engine.Snapshot
	switches map[string]struct{}
	samples  map[string]struct{}
}

func newDefinedNames(s *engine.Snapshot) definedNames {
	d := definedNames{snap: s, switches: map[string]struct{}{}, samples: map[string]struct{}{}}
	for i := range s.NumSwitches() {
		d.switches[s.SwitchName(i)] = struct{}{}
	}
	for i := range s.NumSamples() {
		d.samples[s.SampleName(i)] = struct{}{}
	}
	return d
}

func (d *definedNames) has(k nameKey) bool {
	var ok bool
	switch k.kind {
	case engine.KindFlag:
		_, ok = d.snap.FlagIndex(k.name)
	case engine.KindSwitch:
		_, ok = d.switches[k.name]
	case engine.KindSample:
		_, ok = d.samples[k.name]
	}
	return ok
}

func (d *definedNames) size() int {
	return d.snap.NumFlags() + len(d.switches) + len(d.samples)
}

func newReadLog() *readLog {
	missing, _ := lru.New[nameKey, time.Time](maxMissing) // only a size <= 0 fails
	return &readLog{last: map[nameKey]time.Time{}, missing: missing}
}

// record notes the names rep says were read at now, judged against snap,
// the snapshot the request was decided on (nil: none, nothing is noted).
func (l *readLog) record(snap *engine.Snapshot, rep *readsReport, now time.Time) {
	if snap == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.since.IsZero() {
		l.since = now
	}
	if l.defined.snap != snap {
		l.defined = newDefinedNames(snap)
	}
	for _, names := range [...]readNames{rep.readNames, rep.Missing} {
		l.note(engine.KindFlag, names.Flags, now)
		l.note(engine.KindSwitch, names.Switches, now)
		l.note(engine.KindSample, names.Samples, now)
	}
	l.prune()
}

func (l *readLog) note(kind engine.Kind, names []string, now time.Time) {
	for _, n := range names {
		k := nameKey{kind, n}
		if l.defined.has(k) {
			l.last[k] = now
			l.missing.Remove(k)
		} else {
			l.missing.Add(k, now)
		}
	}
}

// prune drops the names the current snapshot no longer defines once the
// log holds more than it and maxMissing others.
func (l *readLog) prune() {
	if len(l.last) <= l.defined.size()+maxMissing {
		return
	}
	for k := range l.last {
		if !l.defined.has(k) {
			delete(l.last, k)
		}
	}
}

// info returns a copy of the log; missing names that snap defines (they
// were added since) are left out.
func (l *readLog) info(snap *engine.Snapshot) ReadsInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := make(map[nameKey]time.Time, len(l.last))
	for k, t := range l.last {
		last[k] = t
	}
	st := ReadsInfo{Since: l.since, LastRead: func(kind engine.Kind, name string) time.Time { return last[nameKey{kind, name}] }}
	var d definedNames
	if snap != nil {
		d = newDefinedNames(snap)
	}
	for _, k := range l.missing.Keys() {
		t, _ := l.missing.Peek(k)
		if snap == nil || !d.has(k) {
			st.Missing = append(st.Missing, MissingName{Kind: k.kind, Name: k.name, LastRead: t.UTC()})
		}
	}
	slices.SortFunc(st.Missing, func(a, b MissingName) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	return st
}

// missingCount is the number of missing names kept, for a gauge.
func (l *readLog) missingCount() int { return l.missing.Len() }
