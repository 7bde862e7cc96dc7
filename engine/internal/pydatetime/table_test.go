package pydatetime

import (
	"errors"
	"fmt"
	"testing"
)

// oracleScript is the Python program that produced parseTable's expected
// results (run with Debian's /usr/bin/python3 3.11.2 and python3-django
// 3.2.25). It reads a JSON list of strings on stdin and prints, for each,
// [Django 3.2 result, Django 4.x result] in the format of encode. Django
// 4.x is simulated: datetime.fromisoformat, then Django 3.2's datetime_re
// with \s* before the zone. TestOracle runs it when
// FLAGPROXY_PYDATETIME_ORACLE names a Python interpreter with Django.
const oracleScript = `
import datetime, json, re, sys
from django.utils import dateparse

# Django 4.x: fromisoformat first, then datetime_re with \s* before the zone.
modern_re = re.compile(dateparse.datetime_re.pattern.replace('(?P<tzinfo>', r'\s*(?P<tzinfo>'))

def parse42(value):
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError:
        saved, dateparse.datetime_re = dateparse.datetime_re, modern_re
        try:
            return dateparse.parse_datetime(value)
        finally:
            dateparse.datetime_re = saved

US = datetime.timedelta(microseconds=1)
EPOCH_NAIVE = datetime.datetime(1970, 1, 1)
EPOCH_AWARE = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

def encode(parse, value):
    try:
        d = parse(value)
    except ValueError as e:
        return 'error: %s' % e
    if d is None:
        return 'none'
    if d.tzinfo is None:
        return 'naive %d' % ((d - EPOCH_NAIVE) // US)
    return 'aware %d' % ((d - EPOCH_AWARE) // US)

print(json.dumps([[encode(dateparse.parse_datetime, s), encode(parse42, s)]
                  for s in json.load(sys.stdin)]))
`

// encode formats a parse result like oracleScript: "none", "error: " and
// Python's message, or the kind and the microseconds since 1970-01-01
// (UTC for aware values, wall clock for naive ones).
func encode(v Value, err error) string {
	var ve *ValueError
	switch {
	case errors.As(err, &ve):
		return "error: " + ve.Message
	case err != nil:
		return "unexpected error: " + err.Error()
	case v.Kind == None:
		return "none"
	}
	us := v.T.Unix()*1_000_000 + int64(v.T.Nanosecond()/1000)
	return fmt.Sprintf("%s %d", v.Kind, us)
}

// parseTable holds inputs with the results of Django 3.2 and 4.2, as
// printed by oracleScript.
var parseTable = []struct {
	in, v32, v42 string
}{
	{"2017-06-01T12:00Z", "aware 1496318400000000", "aware 1496318400000000"},
	{"2017-06-01T12:00", "naive 1496318400000000", "naive 1496318400000000"},
	{"2017-06-01", "none", "naive 1496275200000000"},
	{"2999-01-01T00:00:00+00:00", "aware 32472144000000000", "aware 32472144000000000"},
	{"2017-6-1T1:2Z", "aware 1496278920000000", "aware 1496278920000000"},
	{"20170601T120000Z", "none", "aware 1496318400000000"},
	{"2017-06-01T12:00:00 +0100", "none", "aware 1496314800000000"},
	{"2017-06-01x12:00Z", "none", "aware 1496318400000000"},
	{"2017-06-01T12:00:00,5Z", "aware 1496318400500000", "aware 1496318400500000"},
	{"2017-06-01T12:00Z\n", "aware 1496318400000000", "aware 1496318400000000"},
	{" 2017-06-01T12:00Z", "none", "none"},
	{"2017-06-01T12:00Z ", "none", "none"},
	{"2017-06-01T24:00Z", "error: hour must be in 0..23", "error: hour must be in 0..23"},
	{"2017-13-01T00:00Z", "error: month must be in 1..12", "error: month must be in 1..12"},
	{"", "none", "none"},
	{"not a date", "none", "none"},
	{"٢٠١٧-06-01T12:00Z", "aware 1496318400000000", "aware 1496318400000000"},
	{"𝟚𝟘𝟙𝟟-06-01T12:00", "naive 1496318400000000", "naive 1496318400000000"},
	{"2017-06-01T12:00:00.٥Z", "aware 1496318400500000", "aware 1496318400500000"},
	{"2017-06-01T12:00+23:99", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=1, seconds=2340).", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=1, seconds=2340)."},
	{"2017-06-01T12:00-23:99", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=-2, seconds=84060).", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=-2, seconds=84060)."},
	{"2017-06-01T12:00+24", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=1).", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=1)."},
	{"2017-06-01T12:00-2400", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=-1).", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=-1)."},
	{"2017-13-01T00:00+99", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=4, seconds=10800).", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=4, seconds=10800)."},
	{"2017-06-01T12:00Z\n\n", "none", "none"},
	{"0000-01-01T00:00", "error: year 0 is out of range", "error: year 0 is out of range"},
	{"2017-06-01T12:00:00.1234567890123Z", "none", "aware 1496318400123456"},
	{"2017-06-01T12:00:00.123456789012Z", "aware 1496318400123456", "aware 1496318400123456"},
	{"2017-06-01T12:00+00:30", "aware 1496316600000000", "aware 1496316600000000"},
	{"2017-06-01T12:00-00:01", "aware 1496318460000000", "aware 1496318460000000"},
	{"2017-06-01T12:00+01:0", "none", "none"},
	{"2017-02-29T00:00", "error: day is out of range for month", "error: day is out of range for month"},
	{"2016-02-29T00:00Z", "aware 1456704000000000", "aware 1456704000000000"},
	{"2017-04-31T00:00", "error: day is out of range for month", "error: day is out of range for month"},
	{"2017-06-01T12:60", "error: minute must be in 0..59", "error: minute must be in 0..59"},
	{"2017-06-01T12:00:60", "error: second must be in 0..59", "error: second must be in 0..59"},
	{"2017-06-01T25:00+01:00", "error: hour must be in 0..23", "error: hour must be in 0..23"},
	{"2017-06-01 12:00:00.5", "naive 1496318400500000", "naive 1496318400500000"},
	{"2017-06-01T12:00:00.000001-05:30", "aware 1496338200000001", "aware 1496338200000001"},
	{"2017-06-01T12:00:00.123+0530", "aware 1496298600123000", "aware 1496298600123000"},
	{"2017-06-01T12:00+05", "aware 1496300400000000", "aware 1496300400000000"},
	{"2017-06-01T12:00\n", "naive 1496318400000000", "naive 1496318400000000"},
	{"2017-06-01T12:00 Z", "none", "aware 1496318400000000"},
	{"2017-06-01T12:00\tZ", "none", "aware 1496318400000000"},
	{"2017-06-01T12:00 \n", "none", "naive 1496318400000000"},
	{"2017-06-01T12:00\u3000+01:00", "none", "aware 1496314800000000"},
	{"2017-06-01T12:00\x1c", "none", "naive 1496318400000000"},
	{"2017-06-01T12:00\u0085Z", "none", "aware 1496318400000000"},
	{"2017-06-01T12:00\x0bZ", "none", "aware 1496318400000000"},
	{"2017-06-01T12:00:00:5", "none", "naive 1496318400500000"},
	{"2017-06-01T12.5", "none", "naive 1496318400500000"},
	{"2017-06-01T12:30.5", "none", "naive 1496320200500000"},
	{"2017-06-01T12:00:00.Z", "none", "aware 1496318400000000"},
	{"2017-06-01T12Z", "none", "aware 1496318400000000"},
	{"2017-06-01T12:00\x00", "none", "naive 1496318400000000"},
	{"2017-06-01T12:00Z\x00junk", "none", "aware 1496318400000000"},
	{"2017-06-01T12:00:00.5\x00", "none", "none"},
	{"2017-06-01T12:00+00:00:00.5", "none", "aware 1496318400000000"},
	{"2017-06-01T12:00-00:00:00.5", "none", "aware 1496318400000000"},
	{"2017-06-01T12:00+01:00:00.5", "none", "aware 1496314799500000"},
	{"2017-06-01é12:00", "none", "naive 1496318400000000"},
	{"2017-06-01€12:00", "none", "naive 1496318400000000"},
	{"2017-06-01😀12:00", "none", "naive 1496318400000000"},
	{"2017-06-01é", "none", "none"},
	{"2017-W01-1", "none", "naive 1483315200000000"},
	{"2017W011T12", "none", "naive 1483358400000000"},
	{"2020-W53-7", "none", "naive 1609632000000000"},
	{"2017-W53", "none", "none"},
	{"2017-W01-", "none", "none"},
	{"0000-W01-1", "none", "none"},
	{"9999-W52-7", "none", "none"},
	{"2017-W01-12:00", "none", "naive 1483358400000000"},
	{"2017W01", "none", "naive 1483315200000000"},
	{"2017W01112", "none", "naive 1483358400000000"},
	{"9999-12-31T23:59:59.999999-23:59", "aware 253402387139999999", "aware 253402387139999999"},
	{"0001-01-01T00:00+05:00", "aware -62135614800000000", "aware -62135614800000000"},
	{"2017-06-01T12:00x+05:00", "none", "aware 1496300400000000"},
	{"20170601", "none", "naive 1496275200000000"},
	{"2017-06-01T1200", "none", "naive 1496318400000000"},
	{"2017-06-01T12:00-23:59:59.999999", "none", "aware 1496404799999999"},
	{"2017-06-01T12:00+99:99", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=4, seconds=16740).", "error: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=4, seconds=16740)."},
	{"2017-06-01T12:00:00.1234567", "naive 1496318400123456", "naive 1496318400123456"},
	{"2017-06-01T12:00:00+05:30:15.1234567", "none", "aware 1496298584876544"},
	{"2017-06-01T12:00+05.5", "none", "aware 1496300399500000"},
	{"2017-06-01\n12:00", "none", "naive 1496318400000000"},
	{"2017-06-01 12", "none", "naive 1496318400000000"},
	{"2017-06-01T", "none", "none"},
	{"2017-06-0112:00", "none", "none"},
	{"2017-06-01T12:00Zz", "none", "none"},
	{"1999-12-31T23:59:59.999999+00:00", "aware 946684799999999", "aware 946684799999999"},
	{"2026-01-15T12:00:00.000000Z", "aware 1768478400000000", "aware 1768478400000000"},
	{"2026-07-04T03:30:00.123456Z", "aware 1783135800123456", "aware 1783135800123456"},
	{"2017-06-01T12:00:00.5Z", "aware 1496318400500000", "aware 1496318400500000"},
	{"2017-06-01T12:00-05", "aware 1496336400000000", "aware 1496336400000000"},
	{"2017-06-01T12:00+0530", "aware 1496298600000000", "aware 1496298600000000"},
	{"2017-06-01T12:00:00+0000", "aware 1496318400000000", "aware 1496318400000000"},
	{"2017-06-01t12:00Z", "none", "aware 1496318400000000"},
	{"2017-06-01T12:00z", "none", "none"},
	{"2017-06-01T12:00− 05:00", "none", "none"},
}

// TestParseTable checks Parse against Python on parseTable.
func TestParseTable(t *testing.T) {
	for _, tc := range parseTable {
		if got := encode(Parse(tc.in, 3, 2)); got != tc.v32 {
			t.Errorf("Parse(%q, 3.2) = %s, want %s", tc.in, got, tc.v32)
		}
		if got := encode(Parse(tc.in, 4, 2)); got != tc.v42 {
			t.Errorf("Parse(%q, 4.2) = %s, want %s", tc.in, got, tc.v42)
		}
	}
}

// TestErrImpossible checks the error contract of Parse.
func TestErrImpossible(t *testing.T) {
	_, err := Parse("2017-06-01T24:00Z", 3, 2)
	if !errors.Is(err, ErrImpossible) {
		t.Fatalf("err = %v, want ErrImpossible", err)
	}
	if v, err := Parse("2017-06-01", 3, 2); err != nil || v.Kind != None {
		t.Fatalf("Parse(date only, 3.2) = %v, %v; want none", v, err)
	}
}
