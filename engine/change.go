package engine

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ChangeOp says how a row changed between two snapshots.
type ChangeOp string

// The kinds of change Diff reports.
const (
	OpAdded   ChangeOp = "added"
	OpRemoved ChangeOp = "removed"
	OpChanged ChangeOp = "changed"
)

// Change is one difference between two snapshots' rows: a name that
// appeared or vanished, or one field of a row, old → new. Values are in
// words: "true", "NULL", "12.5", "1, 2". For an added or removed name,
// Field is empty and New or Old lists every field of the row.
type Change struct {
	Kind   Kind     `json:"kind"`
	Source Source   `json:"source"`
	Name   string   `json:"name"`
	Op     ChangeOp `json:"op"`
	Field  string   `json:"field,omitempty"`
	Old    string   `json:"old,omitempty"`
	New    string   `json:"new,omitempty"`
}

// field is one named value of a row, in words.
type field struct{ name, value string }

// rowKey identifies a row across snapshots: names are unique per kind and
// source.
type rowKey struct {
	kind   Kind
	source Source
	name   string
}

// Diff returns every change from old to new: names added and removed, and
// each changed rule field (and note) of the rows both have, in a stable
// order (kind, source, name, field order). Settings, created and modified
// dates are not compared. Diff of equal data is empty.
func Diff(old, new Data) []Change {
	before, after := rowFields(&old), rowFields(&new)
	keys := slices.Collect(maps.Keys(before))
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b rowKey) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.source, b.source), cmp.Compare(a.name, b.name))
	})
	var out []Change
	for _, k := range keys {
		out = append(out, diffRow(k, before[k], after[k])...)
	}
	return out
}

// diffRow compares one row's fields; nil means the row is absent.
func diffRow(k rowKey, before, after []field) []Change {
	c := Change{Kind: k.kind, Source: k.source, Name: k.name}
	switch {
	case before == nil:
		c.Op, c.New = OpAdded, fieldWords(after)
		return []Change{c}
	case after == nil:
		c.Op, c.Old = OpRemoved, fieldWords(before)
		return []Change{c}
	}
	var out []Change
	for i := range min(len(before), len(after)) {
		if before[i].value != after[i].value {
			c.Op, c.Field, c.Old, c.New = OpChanged, after[i].name, before[i].value, after[i].value
			out = append(out, c)
		}
	}
	return out
}

// fieldWords renders a whole row: "everyone=NULL, percent=50.0, …".
func fieldWords(fs []field) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.name + "=" + f.value
	}
	return strings.Join(parts, ", ")
}

// rowFields lists the compared fields of every row of d, by row.
func rowFields(d *Data) map[rowKey][]field {
	m := make(map[rowKey][]field)
	for _, f := range d.WaffleFlags {
		m[rowKey{KindFlag, SourceWaffle, f.Name}] = waffleFields(f)
	}
	for _, s := range d.Switches {
		m[rowKey{KindSwitch, SourceWaffle, s.Name}] = []field{{"active", strconv.FormatBool(s.Active)}, {"note", s.Note}}
	}
	for _, s := range d.Samples {
		m[rowKey{KindSample, SourceWaffle, s.Name}] = []field{{"percent", s.Percent.String()}, {"note", s.Note}}
	}
	for _, f := range d.Features {
		m[rowKey{KindFlag, SourceFeatureFlipper, f.Name}] = []field{{"enabled", strconv.FormatBool(f.Enabled)}, {"description", f.Description}}
	}
	for _, f := range d.FeatureFlags {
		m[rowKey{KindFlag, SourceFeatureFlag, f.Key}] = []field{{"enabled", strconv.FormatBool(f.Enabled)},
			{"rollout_percent", strconv.FormatInt(f.RolloutPercent, 10)}, {"allowed_users", sortedWords(f.AllowedUsers)}}
	}
	states := make(map[string][]string)
	for _, s := range d.FlagStates {
		c := s.Condition + "=" + s.Value
		if s.Required {
			c += " (required)"
		}
		states[s.Name] = append(states[s.Name], c)
	}
	for name, conds := range states {
		slices.Sort(conds)
		m[rowKey{KindFlag, SourceDjangoFlags, name}] = []field{{"conditions", strings.Join(conds, "; ")}}
	}
	return m
}

// waffleFields are the compared fields of a waffle flag, in the column
// order of waffle_flag, then its users and groups.
func waffleFields(f WaffleFlag) []field {
	groups := make([]string, len(f.Groups))
	for i, g := range f.Groups {
		groups[i] = strconv.FormatInt(g, 10)
	}
	everyone := "NULL"
	if f.Everyone != Unset {
		everyone = strconv.FormatBool(f.Everyone == Yes)
	}
	return []field{
		{"everyone", everyone},
		{"percent", f.Percent.String()},
		{"testing", strconv.FormatBool(f.Testing)},
		{"superusers", strconv.FormatBool(f.Superusers)},
		{"staff", strconv.FormatBool(f.Staff)},
		{"authenticated", strconv.FormatBool(f.Authenticated)},
		{"languages", f.Languages},
		{"rollout", strconv.FormatBool(f.Rollout)},
		{"users", sortedWords(f.Users)},
		{"groups", sortedWords(groups)},
		{"note", f.Note},
	}
}

// sortedWords joins a set of keys in a canonical order: by length, then
// text, which is numeric order for primary keys.
func sortedWords(xs []string) string {
	s := slices.Clone(xs)
	slices.SortFunc(s, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b))
	})
	return strings.Join(slices.Compact(s), ", ")
}

// AdminAction is django_admin_log.action_flag.
type AdminAction int

// The action flags of Django's admin log (django.contrib.admin.models).
const (
	AdminAddition AdminAction = 1
	AdminChange   AdminAction = 2
	AdminDeletion AdminAction = 3
)

// AdminEntry is one django_admin_log row about a flag row, resolved by the
// loader to the kind, source and name of that row.
type AdminEntry struct {
	ID       int64       `json:"id"`
	Time     time.Time   `json:"time"`
	UserID   string      `json:"user_id"`
	Username string      `json:"username"`
	Kind     Kind        `json:"kind"`
	Source   Source      `json:"source"`
	Name     string      `json:"name"`
	Action   AdminAction `json:"action"`
	// Message is the entry's change_message (JSON since Django 1.10).
	Message string `json:"message,omitempty"`
}

// Attribute returns the admin log entry that made c, when the entries
// say so unambiguously: every entry about c's row whose action can have
// made c is by one user (the latest of them is returned). No entry, or
// entries by different users, report false: the author is unknown.
func Attribute(c Change, entries []AdminEntry) (AdminEntry, bool) {
	var found AdminEntry
	ok := false
	for _, e := range entries {
		if e.Kind != c.Kind || e.Source != c.Source || e.Name != c.Name || !canMake(e.Action, c.Op, c.Source) {
			continue
		}
		if ok && e.UserID != found.UserID {
			return AdminEntry{}, false
		}
		if !ok || e.ID > found.ID {
			found, ok = e, true
		}
	}
	return found, ok
}

// canMake says whether an admin action on a row can have made a change of
// op to its name. An addition never removes a name and a deletion never
// adds one; an edit may rename a row (its old name removed, the new one
// added). A django-flags name is several rows (one per condition), so
// adding or deleting one of them may also change the name's conditions.
func canMake(a AdminAction, op ChangeOp, src Source) bool {
	rows := src == SourceDjangoFlags
	switch a {
	case AdminAddition:
		return op == OpAdded || (rows && op == OpChanged)
	case AdminDeletion:
		return op == OpRemoved || (rows && op == OpChanged)
	case AdminChange:
		return true
	}
	return false
}
