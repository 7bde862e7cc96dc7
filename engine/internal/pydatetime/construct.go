package pydatetime

import (
	"fmt"
	"strings"
	"time"
)

// usPerSecond and usPerDay count microseconds, the unit of Python's
// timedelta.
const (
	usPerSecond = 1_000_000
	usPerDay    = 86_400 * usPerSecond
)

// fields holds the arguments of Python's datetime.datetime constructor.
type fields struct {
	year, month, day, hour, minute, second, micro int
}

// zone is a parsed UTC offset: absent (naive), or aware with an offset in
// microseconds east of UTC.
type zone struct {
	aware bool
	us    int64
}

// newTimezone is Python's datetime.timezone(timedelta(microseconds=us)):
// the offset must be strictly between -24h and 24h.
func newTimezone(us int64) (zone, error) {
	if us <= -usPerDay || us >= usPerDay {
		msg := "offset must be a timedelta strictly between " +
			"-timedelta(hours=24) and timedelta(hours=24), not " +
			timedeltaRepr(us) + "."
		return zone{}, &ValueError{Message: msg}
	}
	return zone{aware: true, us: us}, nil
}

// timedeltaRepr is Python 3's repr() of timedelta(microseconds=us).
func timedeltaRepr(us int64) string {
	days := us / usPerDay
	rem := us % usPerDay
	if rem < 0 {
		days, rem = days-1, rem+usPerDay
	}
	var parts []string
	if days != 0 {
		parts = append(parts, fmt.Sprintf("days=%d", days))
	}
	if s := rem / usPerSecond; s != 0 {
		parts = append(parts, fmt.Sprintf("seconds=%d", s))
	}
	if f := rem % usPerSecond; f != 0 {
		parts = append(parts, fmt.Sprintf("microseconds=%d", f))
	}
	if len(parts) == 0 {
		return "datetime.timedelta(0)"
	}
	return "datetime.timedelta(" + strings.Join(parts, ", ") + ")"
}

// checkFields applies the range checks of Python's datetime constructor,
// in its order, and returns its message for the first failure.
func checkFields(f fields) string {
	switch {
	case f.year < 1 || f.year > 9999:
		return fmt.Sprintf("year %d is out of range", f.year)
	case f.month < 1 || f.month > 12:
		return "month must be in 1..12"
	case f.day < 1 || f.day > daysIn(f.year, f.month):
		return "day is out of range for month"
	case f.hour < 0 || f.hour > 23:
		return "hour must be in 0..23"
	case f.minute < 0 || f.minute > 59:
		return "minute must be in 0..59"
	case f.second < 0 || f.second > 59:
		return "second must be in 0..59"
	case f.micro < 0 || f.micro > 999_999:
		return "microsecond must be in 0..999999"
	}
	return ""
}

// daysIn returns the number of days in the month of the proleptic
// Gregorian calendar.
func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// newDatetime is datetime.datetime(**f, tzinfo=z).
func newDatetime(f fields, z zone) (Value, error) {
	if msg := checkFields(f); msg != "" {
		return Value{}, &ValueError{Message: msg}
	}
	t := time.Date(f.year, time.Month(f.month), f.day,
		f.hour, f.minute, f.second, f.micro*1000, time.UTC)
	if !z.aware {
		return Value{Kind: Naive, T: t}, nil
	}
	off := time.Duration(z.us) * time.Microsecond
	t = t.Add(-off)
	if off%time.Second == 0 {
		t = t.In(time.FixedZone("", int(off/time.Second)))
	}
	return Value{Kind: Aware, T: t}, nil
}
