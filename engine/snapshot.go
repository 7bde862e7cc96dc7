package engine

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// ErrInvalidSnapshot is wrapped by every error NewSnapshot returns.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// Data is everything a snapshot is built from: the rows of each source that
// was found, and the settings that shape decisions.
type Data struct {
	// Sources lists the sources that were found, even when their tables
	// are empty.
	Sources      []Source
	WaffleFlags  []WaffleFlag
	Switches     []Switch
	Samples      []Sample
	Features     []Feature
	FeatureFlags []FeatureFlag
	Waffle       WaffleSettings
}

// Conflict is a flag name defined by more than one source. Its decision is
// off (ReasonConflict) unless a URL or session override says otherwise.
type Conflict struct {
	Name    string
	Sources []Source
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
	counts    map[Source]int
	waffle    WaffleSettings
	// usesQuery and friends say whether any rule reads these inputs, so
	// callers can skip parsing them.
	usesQuery, usesCookies, usesHeader, usesLanguage bool
}

type flagRule struct {
	name    string
	source  Source // "" for a conflict
	waffle  *waffleRule
	feature *Feature
	model   *modelRule
}

type waffleRule struct {
	WaffleFlag
	languages  []string // nil when the column is empty
	users      map[string]struct{}
	groups     map[int64]struct{}
	cookie     string // WAFFLE_COOKIE % name
	testCookie string // WAFFLE_TEST_COOKIE % name
	testHeader string // testCookie with '_' turned into '-'
}

type modelRule struct {
	FeatureFlag
	allowed map[string]struct{}
}

// NewSnapshot validates d, copies it into indexed form and computes the
// snapshot's version, a digest of its content. Two snapshots built from the
// same rows and settings have the same version.
func NewSnapshot(d Data) (*Snapshot, error) {
	if err := checkPattern("WAFFLE_COOKIE", d.Waffle.Cookie); err != nil {
		return nil, err
	}
	if err := checkPattern("WAFFLE_TEST_COOKIE", d.Waffle.TestCookie); err != nil {
		return nil, err
	}
	if d.Waffle.MaxAge <= 0 {
		return nil, fmt.Errorf("%w: WAFFLE_MAX_AGE %d: only a positive number of seconds is supported", ErrInvalidSnapshot, d.Waffle.MaxAge)
	}
	s := &Snapshot{
		sources:   slices.Clone(d.Sources),
		flagIndex: make(map[string]int),
		counts:    make(map[Source]int),
		waffle:    d.Waffle,
	}
	slices.Sort(s.sources)
	s.sources = slices.Compact(s.sources)

	byName := make(map[string][]flagRule)
	add := func(src Source, name string, r flagRule) error {
		if !utf8.ValidString(name) {
			return fmt.Errorf("%w: %s flag name %q is not valid UTF-8", ErrInvalidSnapshot, src, name)
		}
		for _, prev := range byName[name] {
			if prev.source == src {
				return fmt.Errorf("%w: %s flag %q defined twice", ErrInvalidSnapshot, src, name)
			}
		}
		r.name, r.source = name, src
		byName[name] = append(byName[name], r)
		s.counts[src]++
		return nil
	}
	for _, f := range d.WaffleFlags {
		if err := add(SourceWaffle, f.Name, flagRule{waffle: newWaffleRule(f, d.Waffle)}); err != nil {
			return nil, err
		}
		s.usesQuery = s.usesQuery || d.Waffle.Override || f.Testing
		s.usesHeader = s.usesHeader || f.Testing
		s.usesCookies = s.usesCookies || f.Testing || (f.Percent.Valid && f.Percent.Tenths > 0)
		s.usesLanguage = s.usesLanguage || f.Languages != ""
	}
	for _, f := range d.Features {
		if err := add(SourceFeatureFlipper, f.Name, flagRule{feature: &f}); err != nil {
			return nil, err
		}
	}
	for _, f := range d.FeatureFlags {
		m := &modelRule{FeatureFlag: f, allowed: set(f.AllowedUsers)}
		m.AllowedUsers = slices.Clone(f.AllowedUsers)
		if err := add(SourceFeatureFlag, f.Key, flagRule{model: m}); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	s.flags = make([]flagRule, len(names))
	for i, n := range names {
		rules := byName[n]
		if len(rules) == 1 {
			s.flags[i] = rules[0]
		} else {
			c := Conflict{Name: n}
			for _, r := range rules {
				c.Sources = append(c.Sources, r.source)
			}
			slices.Sort(c.Sources)
			s.conflicts = append(s.conflicts, c)
			s.flags[i] = flagRule{name: n}
		}
		s.flagIndex[n] = i
	}

	var err error
	if s.switches, err = sortedUnique(d.Switches, func(x Switch) string { return x.Name }, "switch"); err != nil {
		return nil, err
	}
	if s.samples, err = sortedUnique(d.Samples, func(x Sample) string { return x.Name }, "sample"); err != nil {
		return nil, err
	}
	s.version = s.digest()
	return s, nil
}

func newWaffleRule(f WaffleFlag, ws WaffleSettings) *waffleRule {
	w := &waffleRule{WaffleFlag: f, users: set(f.Users), groups: set(f.Groups)}
	w.Users, w.Groups = slices.Clone(f.Users), slices.Clone(f.Groups)
	if f.Languages != "" {
		for _, l := range strings.Split(f.Languages, ",") {
			w.languages = append(w.languages, pyStrip(l))
		}
	}
	w.cookie = pyFormat(ws.Cookie, f.Name)
	w.testCookie = pyFormat(ws.TestCookie, f.Name)
	w.testHeader = strings.ReplaceAll(w.testCookie, "_", "-")
	return w
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

// checkPattern accepts what Python's "pattern % name" accepts for a str name:
// exactly one %s, and %% for a literal percent sign.
func checkPattern(setting, p string) error {
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		if i+1 < len(p) && p[i+1] == '%' {
			i++
			continue
		}
		if i+1 < len(p) && p[i+1] == 's' {
			n++
			i++
			continue
		}
		return fmt.Errorf("%w: %s %q: only %%s and %%%% may follow %%", ErrInvalidSnapshot, setting, p)
	}
	if n != 1 {
		return fmt.Errorf("%w: %s %q must contain %%s exactly once", ErrInvalidSnapshot, setting, p)
	}
	return nil
}

// pyFormat renders a pattern accepted by checkPattern with name.
func pyFormat(p, name string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+1 < len(p) {
			i++
			if p[i] == 's' {
				b.WriteString(name)
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// digest hashes the snapshot's content in a canonical order.
func (s *Snapshot) digest() string {
	h := sha256.New()
	str := func(v string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write([]byte(v))
	}
	num := func(v int64) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	flag := func(b bool) {
		if b {
			num(1)
		} else {
			num(0)
		}
	}
	ws := s.waffle
	flag(ws.FlagDefault)
	flag(ws.SwitchDefault)
	flag(ws.SampleDefault)
	flag(ws.Override)
	flag(ws.Secure)
	str(ws.Cookie)
	str(ws.TestCookie)
	num(int64(ws.MaxAge))
	for _, src := range s.sources {
		str(string(src))
	}
	for _, r := range s.flags {
		str(r.name)
		str(string(r.source))
		switch {
		case r.waffle != nil:
			w := r.waffle
			num(int64(w.Everyone))
			flag(w.Percent.Valid)
			num(int64(w.Percent.Tenths))
			flag(w.Testing)
			flag(w.Superusers)
			flag(w.Staff)
			flag(w.Authenticated)
			flag(w.Rollout)
			str(w.Languages)
			users := slices.Clone(w.Users)
			slices.Sort(users)
			num(int64(len(users)))
			for _, u := range users {
				str(u)
			}
			groups := slices.Clone(w.Groups)
			slices.Sort(groups)
			num(int64(len(groups)))
			for _, g := range groups {
				num(g)
			}
		case r.feature != nil:
			flag(r.feature.Enabled)
		case r.model != nil:
			flag(r.model.Enabled)
			num(r.model.RolloutPercent)
			users := slices.Clone(r.model.AllowedUsers)
			slices.Sort(users)
			num(int64(len(users)))
			for _, u := range users {
				str(u)
			}
		}
	}
	for _, c := range s.conflicts {
		str(c.Name)
		for _, src := range c.Sources {
			str(string(src))
		}
	}
	num(-1)
	for _, x := range s.switches {
		str(x.Name)
		flag(x.Active)
	}
	num(-1)
	for _, x := range s.samples {
		str(x.Name)
		num(int64(x.Percent.Tenths))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

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

// Inputs reports which request inputs any rule of the snapshot reads, so a
// caller can leave the others unparsed (nil in Request).
func (s *Snapshot) Inputs() (query, cookies, header, language bool) {
	return s.usesQuery, s.usesCookies, s.usesHeader, s.usesLanguage
}
