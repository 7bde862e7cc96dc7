package engine

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"
)

// ErrInvalidSnapshot is wrapped by every error NewSnapshot returns.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// Data is everything a snapshot is built from: the rows of each source that
// was found, and the settings that shape decisions. It is the one format of
// flag data: loaders return it, the persisted snapshot and the file source
// store it as JSON, and the golden tests are written in it.
type Data struct {
	// Sources lists the sources that were found, even when their tables
	// are empty.
	Sources      []Source      `json:"sources"`
	WaffleFlags  []WaffleFlag  `json:"waffle_flags,omitempty"`
	Switches     []Switch      `json:"switches,omitempty"`
	Samples      []Sample      `json:"samples,omitempty"`
	Features     []Feature     `json:"features,omitempty"`
	FeatureFlags []FeatureFlag `json:"feature_flags,omitempty"`
	// FlagStates are the rows of django-flags' flags_flagstate, in the
	// order the database returned them.
	FlagStates  []FlagState         `json:"flag_states,omitempty"`
	Waffle      WaffleSettings      `json:"waffle"`
	DjangoFlags DjangoFlagsSettings `json:"django_flags"`
	// Groups names the auth_group rows that waffle flags link to:
	// informative only (rules in words), never part of a decision or of
	// the snapshot's version.
	Groups []Group `json:"groups,omitempty"`
	// AdminLog holds the entries of Django's admin log about flag rows
	// that the load which read these rows saw for the first time (see
	// Attribute): informative only, never part of a decision, of the
	// snapshot's version or of a persisted snapshot.
	AdminLog []AdminEntry `json:"-"`
}

// DefaultData returns empty Data with every library's default settings.
func DefaultData() Data {
	return Data{Waffle: DefaultWaffleSettings(), DjangoFlags: DefaultDjangoFlagsSettings()}
}

// Conflict is a flag name defined by more than one source. Its decision is
// off (ReasonConflict) unless a URL or session override says otherwise.
type Conflict struct {
	Name    string   `json:"name"`
	Sources []Source `json:"sources"`
}

// Snapshot is an immutable, indexed view of every flag, switch and sample at
// one moment. It is safe for concurrent use.
type Snapshot struct {
	version   string
	sources   []Source
	flags     []flagRule // sorted by name
	flagIndex map[string]int
	switches  []Switch // sorted by name
	samples   []Sample // sorted by name
	conflicts []Conflict
	problems  []Problem
	counts    map[Source]int
	waffle    WaffleSettings
	flagsSet  DjangoFlagsSettings
	inputs    Inputs              // what any rule reads
	headers   map[string]struct{} // the headers rules read, see ReadsHeader
	headerAt  [4]uint64           // bit c: one of them begins with byte c (as headerKey writes it)
	cookies   int                 // rules that may write a cookie every request
	tests     int                 // rules that may write a testing cookie
	data      Data                // what the snapshot was built from
	// groupNames and infoDigest are informative only (see Info).
	groupNames map[int64]string
	infoDigest string
}

// flagRule is one flag name and the rule of the source that defines it; a
// nil rule marks a conflict.
type flagRule struct {
	name   string
	source Source // "" for a conflict
	rule   rule
	alts   []flagRule // a conflict's definitions, by source
}

// NewSnapshot validates d, builds every source's rules and computes the
// snapshot's version, a digest of its content. Two snapshots built from the
// same rows and settings have the same version.
func NewSnapshot(d Data) (*Snapshot, error) {
	if err := d.Waffle.check(); err != nil {
		return nil, err
	}
	if slices.Contains(d.Sources, SourceDjangoFlags) {
		if err := d.DjangoFlags.check(); err != nil {
			return nil, err
		}
	}
	s := &Snapshot{
		data:      d,
		sources:   slices.Clone(d.Sources),
		flagIndex: make(map[string]int),
		counts:    make(map[Source]int),
		waffle:    d.Waffle,
		flagsSet:  d.DjangoFlags,
	}
	for _, src := range s.sources {
		if !IsKnownSource(src) {
			return nil, fmt.Errorf("%w: unknown source %q", ErrInvalidSnapshot, src)
		}
	}
	slices.Sort(s.sources)
	s.sources = slices.Compact(s.sources)
	byName, err := s.buildSources(&d)
	if err != nil {
		return nil, err
	}
	s.index(byName)
	if s.switches, err = sortedUnique(d.Switches, func(x Switch) string { return x.Name }, "switch"); err != nil {
		return nil, err
	}
	if s.samples, err = sortedUnique(d.Samples, func(x Sample) string { return x.Name }, "sample"); err != nil {
		return nil, err
	}
	s.version = s.digest()
	s.groupNames = make(map[int64]string, len(d.Groups))
	for _, g := range d.Groups {
		s.groupNames[g.ID] = g.Name
	}
	s.infoDigest = s.digestInfo()
	return s, nil
}

// buildSources runs every known source's builder and groups the rules by
// flag name.
func (s *Snapshot) buildSources(d *Data) (map[string][]flagRule, error) {
	byName := make(map[string][]flagRule)
	for _, src := range sources {
		b, err := src.build(d)
		if err != nil {
			return nil, err
		}
		s.problems = append(s.problems, b.problems...)
		s.cookies += b.cookies
		s.tests += b.tests
		for _, r := range b.rules {
			if !utf8.ValidString(r.name) {
				return nil, fmt.Errorf("%w: %s flag name %q is not valid UTF-8", ErrInvalidSnapshot, src.name, r.name)
			}
			for _, prev := range byName[r.name] {
				if prev.source == src.name {
					return nil, fmt.Errorf("%w: %s flag %q defined twice", ErrInvalidSnapshot, src.name, r.name)
				}
			}
			byName[r.name] = append(byName[r.name], flagRule{name: r.name, source: src.name, rule: r.rule})
			s.counts[src.name]++
			s.inputs |= r.rule.inputs()
			if h, ok := r.rule.(headerReader); ok {
				s.readHeaders(h.headers())
			}
		}
	}
	return byName, nil
}

// index sorts the flag names and turns names defined twice into conflicts.
func (s *Snapshot) index(byName map[string][]flagRule) {
	names := slices.Sorted(maps.Keys(byName))
	s.flags = make([]flagRule, len(names))
	for i, n := range names {
		rules := byName[n]
		s.flagIndex[n] = i
		if len(rules) == 1 {
			s.flags[i] = rules[0]
			continue
		}
		c := Conflict{Name: n}
		for _, r := range rules {
			c.Sources = append(c.Sources, r.source)
		}
		slices.Sort(c.Sources)
		s.conflicts = append(s.conflicts, c)
		slices.SortFunc(rules, func(a, b flagRule) int { return cmp.Compare(a.source, b.source) })
		s.flags[i] = flagRule{name: n, alts: rules}
	}
}

func set[T comparable](xs []T) map[T]struct{} {
	if len(xs) == 0 {
		return nil
	}
	m := make(map[T]struct{}, len(xs))
	for _, x := range xs {
		m[x] = struct{}{}
	}
	return m
}

func sortedUnique[T any](xs []T, name func(T) string, kind string) ([]T, error) {
	out := slices.Clone(xs)
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(name(a), name(b)) })
	for i := range out {
		if !utf8.ValidString(name(out[i])) {
			return nil, fmt.Errorf("%w: %s name %q is not valid UTF-8", ErrInvalidSnapshot, kind, name(out[i]))
		}
		if i > 0 && name(out[i]) == name(out[i-1]) {
			return nil, fmt.Errorf("%w: %s %q defined twice", ErrInvalidSnapshot, kind, name(out[i]))
		}
	}
	return out, nil
}

// digest hashes the snapshot's content in a canonical order.
func (s *Snapshot) digest() string {
	h := newDigester()
	s.waffle.digest(h)
	s.flagsSet.digest(h)
	for _, src := range s.sources {
		h.str(string(src))
	}
	for _, r := range s.flags {
		h.str(r.name)
		h.str(string(r.source))
		if r.rule != nil {
			r.rule.digest(h)
		}
	}
	for _, c := range s.conflicts {
		h.str(c.Name)
		for _, src := range c.Sources {
			h.str(string(src))
		}
	}
	h.num(-1)
	for _, x := range s.switches {
		h.str(x.Name)
		h.flag(x.Active)
	}
	h.num(-1)
	for _, x := range s.samples {
		h.str(x.Name)
		h.num(int64(x.Percent.Tenths))
	}
	return h.sum()
}

// Data returns the rows and settings the snapshot was built from, for
// persisting it; NewSnapshot of the same Data gives the same version. The
// caller must not modify it.
func (s *Snapshot) Data() Data { return s.data }

// Version identifies the snapshot's content: 16 hex digits of a digest.
func (s *Snapshot) Version() string { return s.version }

// Sources returns the sources the snapshot was built from, sorted.
func (s *Snapshot) Sources() []Source { return slices.Clone(s.sources) }

// Count returns how many flags src contributed (waffle switches and samples
// are counted by NumSwitches and NumSamples).
func (s *Snapshot) Count(src Source) int { return s.counts[src] }

// Conflicts returns the flag names defined by more than one source.
func (s *Snapshot) Conflicts() []Conflict {
	out := make([]Conflict, len(s.conflicts))
	for i, c := range s.conflicts {
		out[i] = Conflict{Name: c.Name, Sources: slices.Clone(c.Sources)}
	}
	return out
}

// NumFlags returns the number of flag names (waffle flags, feature-flipper
// features and FeatureFlag keys together).
func (s *Snapshot) NumFlags() int { return len(s.flags) }

// FlagName returns the i-th flag name in sorted order.
func (s *Snapshot) FlagName(i int) string { return s.flags[i].name }

// FlagSource returns the source of the i-th flag, or "" for a conflict.
func (s *Snapshot) FlagSource(i int) Source { return s.flags[i].source }

// FlagIndex returns the index of the flag called name.
func (s *Snapshot) FlagIndex(name string) (int, bool) {
	i, ok := s.flagIndex[name]
	return i, ok
}

// NumSwitches returns the number of waffle switches.
func (s *Snapshot) NumSwitches() int { return len(s.switches) }

// SwitchName returns the i-th switch name in sorted order.
func (s *Snapshot) SwitchName(i int) string { return s.switches[i].Name }

// NumSamples returns the number of waffle samples.
func (s *Snapshot) NumSamples() int { return len(s.samples) }

// SampleName returns the i-th sample name in sorted order.
func (s *Snapshot) SampleName(i int) string { return s.samples[i].Name }

// CookieRules is how many rules may write a cookie on every request (waffle
// percentage flags; testing cookies come on top, only when asked for).
func (s *Snapshot) CookieRules() int { return s.cookies }

// Inputs reports which request inputs any rule of the snapshot reads, so a
// caller can leave the others unparsed (nil or zero in Request).
func (s *Snapshot) Inputs() Inputs { return s.inputs }

// headerReader is a rule that reads request headers: headers names them.
type headerReader interface {
	headers() []string
}

// readHeaders adds names to the headers rules read.
func (s *Snapshot) readHeaders(names []string) {
	if s.headers == nil {
		s.headers = make(map[string]struct{})
	}
	for _, n := range names {
		k := headerKey(nil, n)
		s.headers[string(k)] = struct{}{}
		if len(k) > 0 {
			s.headerAt[k[0]>>6] |= 1 << (k[0] & 63)
		}
	}
}

// ReadsHeader reports whether a rule could read the request header name
// (compared as Request.Header compares: case-insensitively, '_' and '-'
// alike), so that a caller can tell which headers an evaluation depends on.
func (s *Snapshot) ReadsHeader(name string) bool {
	if len(s.headers) == 0 {
		return false
	}
	if name != "" {
		// Most of a request's headers (Cookie, Accept, User-Agent…)
		// begin with a byte that no header a rule reads begins with.
		if c := HeaderNameByte(name[0]); s.headerAt[c>>6]&(1<<(c&63)) == 0 {
			return false
		}
	}
	var buf [64]byte
	_, ok := s.headers[string(headerKey(buf[:0], name))]
	return ok
}

// headerKey appends name lower-cased (ASCII) with '_' turned into '-'.
func headerKey(b []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		b = append(b, HeaderNameByte(name[i]))
	}
	return b
}

// HeaderNameByte is a byte of a request header name as the names of two
// headers compare when Django may read them as one: ASCII lower case, '_'
// as '-' (headerKey writes names so).
func HeaderNameByte(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// Problems returns what the snapshot's rows or settings hold that the
// library would raise on; the flags concerned are always off (ReasonError).
func (s *Snapshot) Problems() []Problem { return slices.Clone(s.problems) }

// WaffleSettings returns the WAFFLE_* settings the snapshot was built with.
func (s *Snapshot) WaffleSettings() WaffleSettings { return s.waffle }
