package pydatetime

// fractionCorrection scales a fraction of 1 to 5 digits to microseconds.
var fractionCorrection = [5]int{100000, 10000, 1000, 100, 10}

// isoZone is CPython's tzinfo_from_isoformat_results: no zone unless rv is
// 1; UTC when the whole seconds are 0 (even if a fraction was given);
// otherwise timezone(timedelta(seconds=tzSec, microseconds=tzUs)).
func isoZone(rv, tzSec, tzUs int) (zone, error) {
	switch {
	case rv != 1:
		return zone{}, nil
	case tzSec == 0:
		return zone{aware: true}, nil
	}
	return newTimezone(int64(tzSec)*usPerSecond + int64(tzUs))
}

// parseTime is CPython's parse_isoformat_time over the dtlen bytes at p.
// It fills f's time fields and returns rv 0 (no zone), 1 (zone with the
// signed offset tzSec seconds and tzUs microseconds) or a negative error.
func (b cbuf) parseTime(p, dtlen int, f *fields) (rv, tzSec, tzUs int) {
	end := p + dtlen
	tz := p
	for {
		if c := b.at(tz); c == 'Z' || c == '+' || c == '-' {
			break
		}
		if tz++; tz >= end {
			break
		}
	}
	var t [4]int
	rv = b.hhmmssff(p, tz, &t)
	f.hour, f.minute, f.second, f.micro = t[0], t[1], t[2], t[3]
	switch {
	case rv < 0:
		return rv, 0, 0
	case tz == end && rv == 1:
		return -5, 0, 0
	case tz == end:
		return 0, 0, 0
	case b.at(tz) == 'Z' && b.at(tz+1) != 0:
		return -5, 0, 0
	case b.at(tz) == 'Z':
		return 1, 0, 0
	}
	sign := 1
	if b.at(tz) == '-' {
		sign = -1
	}
	var o [4]int
	if b.hhmmssff(tz+1, end, &o) != 0 {
		return -5, 0, 0
	}
	return 1, sign * (o[0]*3600 + o[1]*60 + o[2]), sign * o[3]
}

// hhmmssff is CPython's parse_hh_mm_ss_ff: HH[:?MM[:?SS]][{.,}fraction]
// from p up to end into out (hour, minute, second, microsecond). It returns
// 0 when the text ends (at a NUL) right after it, 1 when something else
// follows, and a negative number on error.
func (b cbuf) hhmmssff(p, end int, out *[4]int) int {
	hasSep := true
	for i := 0; i < 3; i++ {
		v, next, ok := b.digits(p, 2)
		if !ok {
			return -3
		}
		out[i] = v
		c := b.at(next)
		p = next + 1
		if i == 0 {
			hasSep = c == ':'
		}
		if p >= end {
			return boolInt(c != 0)
		}
		if hasSep && c == ':' {
			continue
		}
		if c == '.' || c == ',' {
			break
		}
		if hasSep {
			return -4
		}
		p--
	}
	return b.fraction(p, end, out)
}

// fraction parses the fraction digits at p (up to end) into out[3] the way
// parse_hh_mm_ss_ff does: at most 6 digits count, the remaining digits are
// skipped.
func (b cbuf) fraction(p, end int, out *[4]int) int {
	toParse := min(end-p, 6)
	if toParse < 1 {
		return -3 // unreachable: the callers leave p before end
	}
	us, p, ok := b.digits(p, toParse)
	if !ok {
		return -3
	}
	if toParse < 6 {
		us *= fractionCorrection[toParse-1]
	}
	out[3] = us
	for isDigit(b.at(p)) {
		p++
	}
	return boolInt(b.at(p) != 0)
}

// boolInt is C's conversion of a comparison to int.
func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}
