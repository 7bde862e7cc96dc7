package pydatetime

import (
	"errors"
	"time"
	"unicode/utf8"
)

// errInvalid stands for fromisoformat's "Invalid isoformat string"
// ValueError. Django 4+ catches every ValueError of fromisoformat and
// tries its regular expression instead, so the message is not kept.
var errInvalid = errors.New("invalid isoformat string")

// cbuf is the UTF-8 text the way CPython's C parser reads it: a
// NUL-terminated buffer, so every byte past the end reads as NUL. Like
// CPython, the parser below stops at an embedded NUL in some places and
// not in others; indexing through at reproduces that.
type cbuf string

// at returns the byte at i, or NUL past the end.
func (b cbuf) at(i int) byte {
	if i >= 0 && i < len(b) {
		return b[i]
	}
	return 0
}

// isDigit is CPython's is_digit: an ASCII digit.
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// digits is CPython's parse_digits: exactly n ASCII digits from p.
func (b cbuf) digits(p, n int) (val, next int, ok bool) {
	for k := 0; k < n; k++ {
		c := b.at(p + k)
		if !isDigit(c) {
			return 0, p, false
		}
		val = val*10 + int(c-'0')
	}
	return val, p + n, true
}

// fromISOFormat is CPython 3.11's datetime.datetime.fromisoformat
// (Modules/_datetimemodule.c). A syntax error gives errInvalid; an
// impossible value gives a *ValueError.
func fromISOFormat(s string) (Value, error) {
	if utf8.RuneCountInString(s) < 7 {
		return Value{}, errInvalid
	}
	b := cbuf(s)
	sep := b.findSeparator()
	var f fields
	var ok bool
	if sep >= 0 {
		f.year, f.month, f.day, ok = b.parseDate(sep)
	}
	if !ok {
		return Value{}, errInvalid
	}
	var z zone
	if len(b) > sep {
		_, size := utf8.DecodeRuneInString(s[sep:])
		p := sep + size
		rv, tzSec, tzUs := b.parseTime(p, len(b)-p, &f)
		if rv < 0 {
			return Value{}, errInvalid
		}
		var err error
		if z, err = isoZone(rv, tzSec, tzUs); err != nil {
			return Value{}, err
		}
	}
	return newDatetime(f, z)
}

// findSeparator is CPython's _find_isoformat_datetime_separator: the byte
// index of the date/time separator, or -1. It needs len(b) >= 7.
func (b cbuf) findSeparator() int {
	n := len(b)
	if n == 7 {
		return 7
	}
	if b.at(4) == '-' {
		if b.at(5) != 'W' {
			return 10 // YYYY-MM-DD
		}
		if n > 8 && b.at(8) == '-' { // YYYY-Www-D or YYYY-Www-HH
			if n == 9 {
				return -1
			}
			if n > 10 && isDigit(b.at(10)) {
				return 8
			}
			return 10
		}
		return 8 // YYYY-Www
	}
	if b.at(4) != 'W' {
		return 8 // YYYYMMDD
	}
	idx := 7 // YYYYWww or YYYYWwwd
	for idx < n && isDigit(b.at(idx)) {
		idx++
	}
	switch {
	case idx < 9:
		return idx
	case idx%2 == 0:
		return 7
	default:
		return 8
	}
}

// parseDate is CPython's parse_isoformat_date over the bytes before sep.
func (b cbuf) parseDate(sep int) (year, month, day int, ok bool) {
	year, p, ok := b.digits(0, 4)
	if !ok {
		return 0, 0, 0, false
	}
	usesSep := b.at(p) == '-'
	if usesSep {
		p++
	}
	if b.at(p) == 'W' {
		return b.parseWeekDate(year, p+1, sep, usesSep)
	}
	if month, p, ok = b.digits(p, 2); !ok {
		return 0, 0, 0, false
	}
	if usesSep {
		if b.at(p) != '-' {
			return 0, 0, 0, false
		}
		p++
	}
	day, _, ok = b.digits(p, 2)
	return year, month, day, ok
}

// parseWeekDate parses the "ww[[-]d]" of an ISO week date starting at p,
// the byte after 'W'.
func (b cbuf) parseWeekDate(year, p, sep int, usesSep bool) (y, m, d int, ok bool) {
	week, p, ok := b.digits(p, 2)
	if !ok {
		return 0, 0, 0, false
	}
	weekday := 1
	if p < sep {
		if usesSep {
			if b.at(p) != '-' {
				return 0, 0, 0, false
			}
			p++
		}
		if weekday, _, ok = b.digits(p, 1); !ok {
			return 0, 0, 0, false
		}
	}
	return isoToYMD(year, week, weekday)
}

// isoToYMD is CPython's iso_to_ymd. Year 0 is rejected: CPython 3.11.2
// computes garbage there (later releases reject it); either way
// fromisoformat raises ValueError and Django's fallback does not match.
func isoToYMD(year, week, weekday int) (y, m, d int, ok bool) {
	jan1 := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
	first := (int(jan1.Weekday()) + 6) % 7 // 0 = Monday
	if week <= 0 || week >= 53 {
		long := first == 3 || (first == 2 && daysIn(year, 2) == 29)
		if week != 53 || !long {
			return 0, 0, 0, false
		}
	}
	if weekday <= 0 || weekday >= 8 || year < 1 {
		return 0, 0, 0, false
	}
	monday := jan1.AddDate(0, 0, -first)
	if first > 3 {
		monday = monday.AddDate(0, 0, 7)
	}
	t := monday.AddDate(0, 0, (week-1)*7+weekday-1)
	return t.Year(), int(t.Month()), t.Day(), true
}
