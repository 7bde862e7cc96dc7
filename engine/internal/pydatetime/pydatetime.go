// Package pydatetime reproduces Django's django.utils.dateparse.parse_datetime
// and Python's datetime comparison rules, as django-flags' "after date" and
// "before date" conditions use them (spec: shared/spec/django-flags.md §4.2).
//
// Parse picks the parser by Django version. Django 3.2 applies one regular
// expression; Django 4.0 and later first try Python's
// datetime.fromisoformat and fall back to a slightly wider regular
// expression. After and Before then compare the result with "now" the way
// Python does: aware and naive values never compare, and the resolution is
// one microsecond.
//
// The model is CPython 3.11 (Unicode 14.0); 3.12 and 3.13 parse the same.
// Not modelled: fromisoformat of Python 3.10 and older, which Django 4.0 to
// 4.2 also run on (it accepts far less: no "Z", no basic format); later
// changes to fromisoformat; digits added after Unicode 14.0, which Python
// 3.12+ accepts in the fallback grammar; and text that is not valid UTF-8,
// which a Python str cannot hold.
package pydatetime

import (
	"errors"
	"fmt"
	"time"
)

// Kind says what a parse produced.
type Kind int8

const (
	// None means no match: parse_datetime returned None, so both date
	// conditions are False.
	None Kind = iota
	// Aware is a datetime with a UTC offset.
	Aware
	// Naive is a datetime without a UTC offset.
	Naive
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case Aware:
		return "aware"
	case Naive:
		return "naive"
	default:
		return "none"
	}
}

// Value is a parsed datetime. For Aware, T is the instant (in any
// location); for Naive, T holds the wall-clock fields in time.UTC. Both
// have microsecond resolution.
type Value struct {
	Kind Kind
	T    time.Time
}

// String formats the value for test output and logs.
func (v Value) String() string {
	switch v.Kind {
	case Aware:
		return "aware " + v.T.Format("2006-01-02T15:04:05.000000Z07:00")
	case Naive:
		return "naive " + v.T.Format("2006-01-02T15:04:05.000000")
	default:
		return "none"
	}
}

// ErrImpossible is matched (with errors.Is) by every error where Django
// would raise ValueError: the string is well formed but names an
// impossible datetime or UTC offset.
var ErrImpossible = errors.New("pydatetime: well-formed but impossible datetime")

// ValueError is the error returned where Python raises ValueError.
// Message is Python's str() of the exception, e.g. "hour must be in 0..23".
type ValueError struct {
	Message string
}

// Error returns the Python message with a package prefix.
func (e *ValueError) Error() string {
	return "pydatetime: ValueError: " + e.Message
}

// Is reports whether target is ErrImpossible.
func (e *ValueError) Is(target error) bool {
	return target == ErrImpossible
}

// Parse is parse_datetime for the given Django version (major, minor).
// Versions before 4.0 get Django 3.2's parser (django-flags 5 needs Django
// 3.2 or later); 4.0 and later try fromisoformat first, then the fallback
// grammar with optional whitespace before the zone. The minor version does
// not change the result today. For a well-formed but impossible value the
// error is a *ValueError, which matches ErrImpossible; the Value is then
// of Kind None.
func Parse(s string, djangoMajor, djangoMinor int) (Value, error) {
	if djangoMajor >= 4 {
		if v, err := fromISOFormat(s); err == nil {
			return v, nil
		}
		return matchDjango(s, modernRE)
	}
	return matchDjango(s, legacyRE)
}

// FromISO reads the output of Python's datetime.isoformat(), as the
// settings file stores {"$datetime": ...} values: aware when it has an
// offset, naive otherwise. It accepts everything CPython 3.11's
// datetime.fromisoformat accepts. An impossible value gives a *ValueError
// (matching ErrImpossible); any other string an error that does not match
// ErrImpossible.
func FromISO(s string) (Value, error) {
	v, err := fromISOFormat(s)
	if errors.Is(err, errInvalid) {
		return Value{}, fmt.Errorf("pydatetime: invalid isoformat string %q", s)
	}
	return v, err
}

// Now returns what Django's timezone.now() returns at instant t: the aware
// instant when useTZ (USE_TZ) is true, else the naive wall-clock time in
// loc (TIME_ZONE; nil means UTC). Python's clock has microsecond
// resolution, so t is truncated to the microsecond.
func Now(t time.Time, useTZ bool, loc *time.Location) Value {
	if loc == nil {
		loc = time.UTC
	}
	if useTZ {
		return Value{Kind: Aware, T: t.UTC().Truncate(time.Microsecond)}
	}
	return Value{Kind: Naive, T: wallClock(t.In(loc))}
}

// After implements django-flags' "after date": now > v, with Python's
// rules. It is false when either value is None or one is aware and the
// other naive (Python raises TypeError, which django-flags catches).
func After(v, now Value) bool {
	c, ok := compare(now, v)
	return ok && c > 0
}

// Before implements django-flags' "before date": now < v, with the same
// rules as After.
func Before(v, now Value) bool {
	c, ok := compare(now, v)
	return ok && c < 0
}

// compare orders a and b like Python's datetime comparison. ok is false
// when Python would raise TypeError.
func compare(a, b Value) (c int, ok bool) {
	if a.Kind == None || a.Kind != b.Kind {
		return 0, false
	}
	ta, tb := a.T.Truncate(time.Microsecond), b.T.Truncate(time.Microsecond)
	if a.Kind == Naive {
		ta, tb = wallClock(a.T), wallClock(b.T)
	}
	return ta.Compare(tb), true
}

// wallClock returns t's wall-clock fields, truncated to the microsecond,
// as a time in time.UTC.
func wallClock(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	us := t.Nanosecond() / 1000
	return time.Date(y, mo, d, h, mi, s, us*1000, time.UTC)
}
