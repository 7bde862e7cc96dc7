package engine

import (
	"slices"
	"time"
)

// Info is what a row says about a flag, switch or sample beyond its rule
// (waffle's note, created and modified columns; feature-flipper's
// description as Note). It is informative only: never part of a decision
// or of the snapshot's version, so a changed note makes no new version
// (Store.Publish still swaps the snapshot in, see InfoDigest).
type Info struct {
	Note     string    `json:"note,omitempty"`
	Created  time.Time `json:"created,omitzero"`
	Modified time.Time `json:"modified,omitzero"`
}

// Group is one auth_group row: its id and name.
type Group struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// infoOf returns the informative fields of a flag rule.
func infoOf(r rule) Info {
	switch x := r.(type) {
	case *waffleRule:
		return x.Info
	case featureRule:
		return Info{Note: x.description}
	}
	return Info{}
}

// FlagInfo returns the informative fields of the i-th flag (for a name
// defined by two sources, those of the first that has any).
func (s *Snapshot) FlagInfo(i int) Info {
	f := &s.flags[i]
	if f.rule != nil {
		return infoOf(f.rule)
	}
	for _, a := range f.alts {
		if in := infoOf(a.rule); in != (Info{}) {
			return in
		}
	}
	return Info{}
}

// SwitchInfo returns the informative fields of the i-th switch.
func (s *Snapshot) SwitchInfo(i int) Info { return s.switches[i].Info }

// SampleInfo returns the informative fields of the i-th sample.
func (s *Snapshot) SampleInfo(i int) Info { return s.samples[i].Info }

// GroupName returns the name of the auth_group row id, if the data named
// it.
func (s *Snapshot) GroupName(id int64) (string, bool) {
	n, ok := s.groupNames[id]
	return n, ok
}

// InfoDigest identifies the informative fields of the snapshot (notes,
// dates, descriptions, group names), which its Version leaves out.
func (s *Snapshot) InfoDigest() string { return s.infoDigest }

// digestInfo hashes every informative field in a canonical order.
func (s *Snapshot) digestInfo() string {
	h := newDigester()
	info := func(in Info) {
		h.str(in.Note)
		h.num(in.Created.UnixNano())
		h.num(in.Modified.UnixNano())
	}
	for i := range s.flags {
		info(s.FlagInfo(i))
	}
	for _, x := range s.switches {
		info(x.Info)
	}
	for _, x := range s.samples {
		info(x.Info)
	}
	ids := make([]int64, 0, len(s.groupNames))
	for id := range s.groupNames {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		h.num(id)
		h.str(s.groupNames[id])
	}
	return h.sum()
}
