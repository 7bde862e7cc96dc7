package engine

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// FlagState is one row of django-flags' flags_flagstate table.
type FlagState struct {
	Name      string `json:"name"`
	Condition string `json:"condition"`
	Value     string `json:"value"`
	Required  bool   `json:"required"`
}

// SettingCondition is one condition of a flag in django-flags' FLAGS
// setting, in the JSON form manage.py flagproxy_settings writes
// (spec/django-flags.md §10.1): Condition is nil when the Python name was
// not a string; Value is a JSON string, number, boolean or null, or one of
// the tagged objects {"$datetime": iso}, {"$date": "YYYY-MM-DD"},
// {"$other": type name, "truthy": bool}.
type SettingCondition struct {
	Condition *string         `json:"condition"`
	Value     json.RawMessage `json:"value"`
	Required  bool            `json:"required"`
}

// PyError is an exception the library raised, as the settings file
// records it.
type PyError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func (e PyError) String() string { return e.Type + ": " + e.Message }

// The two FLAG_SOURCES entries flagproxy reproduces.
const (
	FlagsSettingsSource = "flags.sources.SettingsFlagsSource"
	FlagsDatabaseSource = "flags.sources.DatabaseFlagsSource"
)

// DjangoFlagsSettings holds the Django settings django-flags' decisions
// depend on, keyed in JSON by their Django names.
type DjangoFlagsSettings struct {
	// Flags is the FLAGS setting; nil when the site does not set it.
	Flags map[string][]SettingCondition `json:"FLAGS,omitempty"`
	// FlagsError replaces Flags when reading FLAGS raises: every flag
	// check then raises while the settings source is in FlagSources.
	FlagsError *PyError `json:"FLAGS_ERROR,omitempty"`
	// FlagSources is FLAG_SOURCES; nil means the library's default
	// (settings, then database). Entries other than FlagsSettingsSource
	// and FlagsDatabaseSource cannot be reproduced and are left out.
	FlagSources []string `json:"FLAG_SOURCES,omitempty"`
	// MaxNumberFields is DATA_UPLOAD_MAX_NUMBER_FIELDS; nil means no limit.
	MaxNumberFields *int `json:"DATA_UPLOAD_MAX_NUMBER_FIELDS"`
	UseTZ           bool `json:"USE_TZ"`
	// TimeZone is TIME_ZONE; Location is the same zone resolved by the
	// caller (the engine loads nothing), needed when UseTZ is false.
	TimeZone string         `json:"TIME_ZONE"`
	Location *time.Location `json:"-"`
	// DjangoVersion selects the date grammar of parse_datetime ("3.2",
	// "4.2.1", …); empty means the newest rules.
	DjangoVersion string `json:"DJANGO_VERSION,omitempty"`
}

// DefaultDjangoFlagsSettings returns the defaults of a site made by
// Django's startproject: no FLAGS, the default sources, a limit of 1,000
// query fields, USE_TZ with UTC.
func DefaultDjangoFlagsSettings() DjangoFlagsSettings {
	limit := 1000
	return DjangoFlagsSettings{MaxNumberFields: &limit, UseTZ: true, TimeZone: "UTC", Location: time.UTC}
}

// IsZero reports whether fs is the zero value (nothing set at all, not
// even USE_TZ's location), which callers replace by the defaults.
func (fs *DjangoFlagsSettings) IsZero() bool {
	return fs.Flags == nil && fs.FlagsError == nil && fs.FlagSources == nil && fs.MaxNumberFields == nil &&
		!fs.UseTZ && fs.TimeZone == "" && fs.Location == nil && fs.DjangoVersion == ""
}

func (fs *DjangoFlagsSettings) check() error {
	if !fs.UseTZ && fs.Location == nil {
		return fmt.Errorf("%w: USE_TZ is false but TIME_ZONE %q was not resolved to a location", ErrInvalidSnapshot, fs.TimeZone)
	}
	if fs.MaxNumberFields != nil && *fs.MaxNumberFields < 0 {
		return fmt.Errorf("%w: DATA_UPLOAD_MAX_NUMBER_FIELDS %d is negative", ErrInvalidSnapshot, *fs.MaxNumberFields)
	}
	if _, _, err := djangoVersion(fs.DjangoVersion); err != nil {
		return fmt.Errorf("%w: DJANGO_VERSION: %v", ErrInvalidSnapshot, err)
	}
	return nil
}

func (fs *DjangoFlagsSettings) digest(h *digester) {
	names := make([]string, 0, len(fs.Flags))
	for n := range fs.Flags {
		names = append(names, n)
	}
	slices.Sort(names)
	h.flag(fs.Flags != nil)
	for _, n := range names {
		h.str(n)
		for _, c := range fs.Flags[n] {
			h.flag(c.Condition != nil)
			if c.Condition != nil {
				h.str(*c.Condition)
			}
			h.str(string(c.Value))
			h.flag(c.Required)
		}
		h.num(-1)
	}
	if fs.FlagsError != nil {
		h.str(fs.FlagsError.String())
	}
	h.flag(fs.FlagSources != nil)
	h.strs(fs.FlagSources)
	h.num(-1)
	if fs.MaxNumberFields != nil {
		h.num(int64(*fs.MaxNumberFields))
	}
	h.flag(fs.UseTZ)
	h.str(fs.TimeZone)
	h.str(fs.DjangoVersion)
}

// sources returns which of the two reproducible sources FLAG_SOURCES
// names, in its order, and the entries it cannot reproduce.
func (fs *DjangoFlagsSettings) sources() (order, custom []string) {
	list := fs.FlagSources
	if list == nil {
		list = []string{FlagsSettingsSource, FlagsDatabaseSource}
	}
	for _, s := range list {
		switch s {
		case FlagsSettingsSource, FlagsDatabaseSource:
			order = append(order, s)
		default:
			custom = append(custom, s)
		}
	}
	return order, custom
}

// buildDjangoFlags merges the FLAGS setting and the flags_flagstate rows as
// django-flags' get_flags does (spec §2.2): sources in FLAG_SOURCES order,
// each flag's conditions pooled in that order.
func buildDjangoFlags(d *Data) (built, error) {
	var b built
	if !slices.Contains(d.Sources, SourceDjangoFlags) {
		return b, nil
	}
	fs := &d.DjangoFlags
	order, custom := fs.sources()
	problem := func(flag, msg string, raises bool) {
		b.problems = append(b.problems, Problem{Source: SourceDjangoFlags, Flag: flag, Error: msg, Raises: raises})
	}
	for _, c := range custom {
		problem("", fmt.Sprintf("FLAG_SOURCES entry %s cannot be reproduced: its flags are unknown to flagproxy", c), false)
	}
	var names []string
	conds := make(map[string][]rawCondition)
	declare := func(name string) {
		if _, ok := conds[name]; !ok {
			names = append(names, name)
			conds[name] = nil
		}
	}
	add := func(name string, c rawCondition) {
		declare(name)
		conds[name] = append(conds[name], c)
	}
	var broken *PyError
	for _, src := range order {
		if src == FlagsDatabaseSource {
			for _, r := range d.FlagStates {
				add(r.Name, rawCondition{kind: r.Condition, value: stringValue(r.Value), required: r.Required})
			}
			continue
		}
		if fs.FlagsError != nil {
			broken = fs.FlagsError
			continue
		}
		if err := addSettingFlags(fs.Flags, declare, add); err != nil {
			return b, err
		}
	}
	if broken != nil {
		problem("", "reading FLAGS raises "+broken.String()+": every django-flags check raises", true)
	}
	ver := dateGrammar(fs.DjangoVersion)
	for _, n := range names {
		r := compileFlag(conds[n], ver, fs)
		if broken != nil {
			r = &djangoFlagRule{raises: broken.String()}
		}
		if r.raises != "" && broken == nil {
			problem(n, r.raises, true)
		}
		for _, u := range r.unknown {
			problem(n, fmt.Sprintf("condition %s is not a built-in condition: it counts as false", u), false)
		}
		b.rules = append(b.rules, namedRule{n, r})
	}
	return b, nil
}

// addSettingFlags adds the FLAGS setting's conditions, flags in name order
// (the order of flags does not matter; each flag's list keeps its order).
func addSettingFlags(flags map[string][]SettingCondition, declare func(string), add func(string, rawCondition)) error {
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		declare(n)
		for i, c := range flags[n] {
			v, err := parseSettingValue(c.Value)
			if err != nil {
				return fmt.Errorf("%w: FLAGS[%q][%d]: %v", ErrInvalidSnapshot, n, i, err)
			}
			rc := rawCondition{value: v, required: c.Required, nameNull: c.Condition == nil}
			if c.Condition != nil {
				rc.kind = *c.Condition
			}
			add(n, rc)
		}
	}
	return nil
}
