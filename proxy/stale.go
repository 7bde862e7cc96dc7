package proxy

import (
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// DefaultStaleAfterDays is how long a flag may stay decided the same way
// for everyone, or unread, before it is reported stale.
const DefaultStaleAfterDays = 30

// ReadsInfo is what is known of the names the app read (ReadsHeader).
type ReadsInfo struct {
	// Since is when the first report arrived; zero when the app has
	// reported none (nothing is then said about unread names).
	Since time.Time
	// LastRead returns when a name was last read, or the zero time; nil
	// means never.
	LastRead func(kind engine.Kind, name string) time.Time
	// Missing are the names read that no source defines.
	Missing []MissingName
}

// MissingName is a name the app read that no source defines.
type MissingName struct {
	Kind     engine.Kind `json:"kind"`
	Name     string      `json:"name"`
	LastRead time.Time   `json:"last_read"`
}

// StaleReport is the stale and missing flags of a snapshot: the answer of
// `flagproxy stale --json` and the "stale" member of /flags.json.
type StaleReport struct {
	GeneratedAt     time.Time `json:"generated_at"`
	StaleAfterDays  float64   `json:"stale_after_days"`
	SnapshotVersion string    `json:"snapshot_version"`
	// Reads says whether, and since when, the app reports reads.
	Reads StaleReads `json:"reads"`
	// Uniform lists every name decided the same way for everyone.
	Uniform []UniformName `json:"uniform"`
	// Unread lists the defined names not read within StaleAfterDays
	// (empty when reads are not reported).
	Unread []UnreadName `json:"unread"`
	// Missing lists the names read that no source defines.
	Missing []MissingName `json:"missing"`
	// Stale counts the entries of Uniform and Unread marked stale.
	Stale int `json:"stale"`
}

// StaleReads says whether reads are reported, and for how long.
type StaleReads struct {
	Reported     bool      `json:"reported"`
	Since        time.Time `json:"since,omitzero"`
	WatchingDays float64   `json:"watching_days"`
}

// UniformName is a name decided the same way for everyone. Days is the
// time since its row was modified, nil when the table has no modified
// column; it is stale when Days exceeds StaleAfterDays.
type UniformName struct {
	Kind     engine.Kind   `json:"kind"`
	Name     string        `json:"name"`
	Source   engine.Source `json:"source"`
	On       bool          `json:"on"`
	Rule     string        `json:"rule"`
	Modified time.Time     `json:"modified,omitzero"`
	Days     *float64      `json:"days"`
	Stale    bool          `json:"stale"`
}

// UnreadName is a defined name the app did not read within StaleAfterDays
// (LastRead zero: not since reads were first reported). It is stale when
// flagproxy has been watching for at least StaleAfterDays.
type UnreadName struct {
	Kind     engine.Kind   `json:"kind"`
	Name     string        `json:"name"`
	Source   engine.Source `json:"source"`
	LastRead time.Time     `json:"last_read,omitzero"`
	Stale    bool          `json:"stale"`
}

// NewStaleReport builds the stale report of snap at now.
func NewStaleReport(snap *engine.Snapshot, reads ReadsInfo, now time.Time, after time.Duration) StaleReport {
	rep := StaleReport{GeneratedAt: now.UTC(), StaleAfterDays: after.Hours() / 24, Uniform: []UniformName{},
		Unread: []UnreadName{}, Missing: reads.Missing}
	if rep.Missing == nil {
		rep.Missing = []MissingName{}
	}
	if !reads.Since.IsZero() {
		watching := now.Sub(reads.Since)
		rep.Reads = StaleReads{Reported: true, Since: reads.Since.UTC(), WatchingDays: watching.Hours() / 24}
	}
	if snap == nil {
		return rep
	}
	rep.SnapshotVersion = snap.Version()
	eachName(snap, func(n namedEntry) {
		if on, ok := n.uniform(); ok {
			rep.addUniform(n, on, now, after)
		}
		if rep.Reads.Reported {
			rep.addUnread(n, reads, now, after)
		}
	})
	return rep
}

func (rep *StaleReport) addUniform(n namedEntry, on bool, now time.Time, after time.Duration) {
	u := UniformName{Kind: n.kind, Name: n.name, Source: n.source, On: on, Rule: n.rule(), Modified: n.info.Modified.UTC()}
	if !n.info.Modified.IsZero() {
		days := now.Sub(n.info.Modified).Hours() / 24
		u.Days, u.Stale = &days, now.Sub(n.info.Modified) > after
	} else {
		u.Modified = time.Time{}
	}
	rep.Uniform = append(rep.Uniform, u)
	if u.Stale {
		rep.Stale++
	}
}

func (rep *StaleReport) addUnread(n namedEntry, reads ReadsInfo, now time.Time, after time.Duration) {
	var last time.Time
	if reads.LastRead != nil {
		last = reads.LastRead(n.kind, n.name)
	}
	if !last.IsZero() && now.Sub(last) <= after {
		return
	}
	u := UnreadName{Kind: n.kind, Name: n.name, Source: n.source, Stale: now.Sub(reads.Since) >= after}
	if !last.IsZero() {
		u.LastRead = last.UTC()
	}
	rep.Unread = append(rep.Unread, u)
	if u.Stale {
		rep.Stale++
	}
}

// namedEntry is one flag, switch or sample of a snapshot.
type namedEntry struct {
	snap   *engine.Snapshot
	kind   engine.Kind
	i      int
	name   string
	source engine.Source
	info   engine.Info
}

func (n namedEntry) uniform() (on, ok bool) {
	switch n.kind {
	case engine.KindSwitch:
		return n.snap.SwitchUniform(n.i)
	case engine.KindSample:
		return n.snap.SampleUniform(n.i)
	}
	return n.snap.FlagUniform(n.i)
}

func (n namedEntry) rule() string {
	switch n.kind {
	case engine.KindSwitch:
		return n.snap.SwitchRule(n.i)
	case engine.KindSample:
		return n.snap.SampleRule(n.i)
	}
	return n.snap.FlagRule(n.i)
}

// eachName calls f for every flag, switch and sample of snap, in order.
func eachName(snap *engine.Snapshot, f func(namedEntry)) {
	for i := range snap.NumFlags() {
		f(namedEntry{snap, engine.KindFlag, i, snap.FlagName(i), snap.FlagSource(i), snap.FlagInfo(i)})
	}
	for i := range snap.NumSwitches() {
		f(namedEntry{snap, engine.KindSwitch, i, snap.SwitchName(i), engine.SourceWaffle, snap.SwitchInfo(i)})
	}
	for i := range snap.NumSamples() {
		f(namedEntry{snap, engine.KindSample, i, snap.SampleName(i), engine.SourceWaffle, snap.SampleInfo(i)})
	}
}
