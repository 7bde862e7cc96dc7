package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flagproxy/flagproxy/engine/internal/pydatetime"
	"github.com/flagproxy/flagproxy/engine/internal/pyre"
)

// valueKind is the Python type of a condition's value.
type valueKind uint8

const (
	vString valueKind = iota
	vInt
	vFloat
	vBool
	vNone
	vDatetime
	vDate
	vOther
)

// condValue is a condition's value: always a string from the database, any
// JSON-representable Python value from FLAGS.
type condValue struct {
	kind   valueKind
	str    string // the string; the isoformat of a datetime or date; the type name of another value
	truthy bool   // bool(value), for every kind but vString
}

func stringValue(s string) condValue { return condValue{kind: vString, str: s, truthy: s != ""} }

// typeName is the Python type name, as exception messages give it.
func (v condValue) typeName() string {
	switch v.kind {
	case vString:
		return "str"
	case vInt:
		return "int"
	case vFloat:
		return "float"
	case vBool:
		return "bool"
	case vNone:
		return "NoneType"
	case vDatetime:
		return "datetime"
	case vDate:
		return "date"
	}
	return v.str
}

// parseSettingValue reads a FLAGS condition value in the settings file's
// JSON form (spec/django-flags.md §10.1).
func parseSettingValue(raw json.RawMessage) (condValue, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return condValue{kind: vNone}, nil
	}
	switch raw[0] {
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return stringValue(s), err
	case 't', 'f':
		var b bool
		err := json.Unmarshal(raw, &b)
		return condValue{kind: vBool, str: "bool", truthy: b}, err
	case '{':
		return parseTaggedValue(raw)
	case '[':
		return condValue{}, errors.New("a list is not a value of the JSON form")
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return condValue{}, fmt.Errorf("value %s: %w", raw, err)
	}
	kind := vInt
	if bytes.ContainsAny(raw, ".eE") {
		kind = vFloat
	}
	return condValue{kind: kind, str: string(raw), truthy: f != 0}, nil
}

func parseTaggedValue(raw json.RawMessage) (condValue, error) {
	var t struct {
		Datetime *string `json:"$datetime"`
		Date     *string `json:"$date"`
		Other    *string `json:"$other"`
		Truthy   *bool   `json:"truthy"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return condValue{}, fmt.Errorf("tagged value %s: %w", raw, err)
	}
	switch {
	case t.Datetime != nil && t.Date == nil && t.Other == nil && t.Truthy == nil:
		return condValue{kind: vDatetime, str: *t.Datetime, truthy: true}, nil
	case t.Date != nil && t.Datetime == nil && t.Other == nil && t.Truthy == nil:
		return condValue{kind: vDate, str: *t.Date, truthy: true}, nil
	case t.Other != nil && t.Truthy != nil && t.Datetime == nil && t.Date == nil:
		return condValue{kind: vOther, str: *t.Other, truthy: *t.Truthy}, nil
	}
	return condValue{}, fmt.Errorf("tagged value %s: want one of {\"$datetime\"}, {\"$date\"}, {\"$other\", \"truthy\"}", raw)
}

// rawCondition is one condition of a flag before compiling.
type rawCondition struct {
	kind     string // the condition's registered name
	nameNull bool   // the Python name was not a string
	value    condValue
	required bool
}

// condKind is a built-in condition of django-flags.
type condKind uint8

const (
	condUnknown condKind = iota
	condBoolean
	condUser
	condAnonymous
	condParameter
	condPath
	condAfter
	condBefore
)

var condKinds = map[string]condKind{
	"boolean":      condBoolean,
	"user":         condUser,
	"anonymous":    condAnonymous,
	"parameter":    condParameter,
	"path matches": condPath,
	"after date":   condAfter,
	"before date":  condBefore,
}

// flagCondition is a compiled condition: what it compares, worked out once.
type flagCondition struct {
	kind     condKind
	required bool
	truth    bool   // boolean: its result; anonymous: the is_anonymous it wants
	never    bool   // always false (a value the condition cannot compare)
	text     string // user: the username; parameter: the parameter's name
	expected string // parameter: the value wanted
	re       *pyre.Regexp
	date     pydatetime.Value
}

// errRaises marks a condition django-flags would raise on.
var errRaises = errors.New("raises")

// compileCondition works out c once. An error is the exception the library
// would raise when it evaluates c ("Class: message").
func compileCondition(c rawCondition, ver [2]int) (flagCondition, error) {
	fc := flagCondition{kind: condKinds[c.kind], required: c.required}
	if c.nameNull {
		fc.kind = condUnknown
	}
	v := c.value
	switch fc.kind {
	case condBoolean, condAnonymous:
		t, err := truthOf(v)
		fc.truth = t
		return fc, err
	case condUser:
		fc.text, fc.never = v.str, v.kind != vString
	case condParameter:
		if v.kind != vString {
			return fc, fmt.Errorf("%w AttributeError: '%s' object has no attribute 'split'", errRaises, v.typeName())
		}
		fc.text, fc.expected = parameterName(v.str)
	case condPath:
		if v.kind != vString {
			return fc, fmt.Errorf("%w TypeError: first argument must be string or compiled pattern", errRaises)
		}
		re, err := pyre.Compile(v.str)
		if errors.Is(err, pyre.ErrUnsupported) {
			return fc, fmt.Errorf("%w flagproxy cannot reproduce this Python pattern: %v", errRaises, err)
		}
		if err != nil {
			return fc, fmt.Errorf("%w re.error: %v", errRaises, err)
		}
		fc.re = re
	case condAfter, condBefore:
		return compileDate(fc, v, ver)
	}
	return fc, nil
}

// compileDate parses a date condition's value as parse_datetime would.
func compileDate(fc flagCondition, v condValue, ver [2]int) (flagCondition, error) {
	var err error
	switch v.kind {
	case vString:
		fc.date, err = pydatetime.Parse(v.str, ver[0], ver[1])
	case vDatetime:
		fc.date, err = pydatetime.FromISO(v.str)
	default:
		fc.never = true // comparing a datetime with it is a TypeError, caught
		return fc, nil
	}
	if errors.Is(err, pydatetime.ErrImpossible) {
		return fc, fmt.Errorf("%w ValueError: %v", errRaises, err)
	}
	if err != nil {
		return fc, fmt.Errorf("%w flagproxy cannot read date %q: %v", errRaises, v.str, err)
	}
	fc.never = fc.date.Kind == pydatetime.None
	return fc, nil
}

// truthOf is django-flags' strtobool for a string (stripped, any case) and
// Python's truthiness for any other value.
func truthOf(v condValue) (bool, error) {
	if v.kind != vString {
		return v.truthy, nil
	}
	switch strings.ToLower(pyStrip(v.str)) {
	case "y", "yes", "t", "true", "on", "1":
		return true, nil
	case "n", "no", "f", "false", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%w ValueError: invalid truth value %s", errRaises, pyRepr(v.str))
}

// parameterName splits a parameter condition's value (spec §4.1): NAME=EXPECTED
// with exactly one "=", else the whole value and "True".
func parameterName(v string) (name, expected string) {
	if strings.Count(v, "=") == 1 {
		name, expected, _ = strings.Cut(v, "=")
		return name, expected
	}
	return v, "True"
}

// pyRepr quotes s roughly as Python's repr does, for messages.
func pyRepr(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return strconv.Quote(s)
	}
	q := strconv.Quote(s)
	return "'" + strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`) + "'"
}

// eval evaluates a compiled condition for r; now is computed on first use.
func (c *flagCondition) eval(r *Request, f *djangoFlagRule, now *pydatetime.Value) (bool, error) {
	if c.never {
		return false, nil
	}
	switch c.kind {
	case condBoolean:
		return c.truth, nil
	case condAnonymous:
		return c.truth == !r.Subject.Authenticated, nil
	case condUser:
		return r.Subject.Authenticated && r.Subject.Username == c.text, nil
	case condParameter:
		if f.maxFields >= 0 && 1+strings.Count(r.RawQuery, "&") > f.maxFields {
			return false, errTooManyFields
		}
		v, ok := get(r.Query, c.text)
		return ok && v == c.expected, nil
	case condPath:
		return c.re.Search(r.Path)
	case condAfter, condBefore:
		if now.Kind == pydatetime.None {
			*now = pydatetime.Now(r.Now, f.useTZ, f.loc)
		}
		if c.kind == condAfter {
			return pydatetime.After(c.date, *now), nil
		}
		return pydatetime.Before(c.date, *now), nil
	}
	return false, nil // an unknown condition is None: falsy
}

var errTooManyFields = errors.New("django.core.exceptions.TooManyFieldsSent")

// djangoFlagRule is one django-flags flag: its pooled conditions.
type djangoFlagRule struct {
	raw         []rawCondition
	conds       []flagCondition
	hasOptional bool
	raises      string   // the flag check always raises with this
	unknown     []string // condition names that are not built in
	in          Inputs
	maxFields   int // -1: no limit
	useTZ       bool
	loc         *time.Location
}

// compileFlag compiles a flag's conditions. A condition that would raise
// makes the whole flag raise, as flag_state evaluates every condition.
func compileFlag(raw []rawCondition, ver [2]int, fs *DjangoFlagsSettings) *djangoFlagRule {
	f := &djangoFlagRule{raw: raw, maxFields: -1, useTZ: fs.UseTZ, loc: fs.Location}
	if fs.MaxNumberFields != nil {
		f.maxFields = *fs.MaxNumberFields
	}
	for _, rc := range raw {
		c, err := compileCondition(rc, ver)
		if err != nil && f.raises == "" {
			f.raises = strings.TrimPrefix(strings.TrimPrefix(err.Error(), errRaises.Error()), " ")
		}
		if c.kind == condUnknown {
			f.unknown = append(f.unknown, pyRepr(rc.kind))
		}
		f.hasOptional = f.hasOptional || !c.required
		f.in |= c.inputs()
		f.conds = append(f.conds, c)
	}
	return f
}

func (c *flagCondition) inputs() Inputs {
	switch c.kind {
	case condParameter:
		return InputQuery
	case condPath:
		return InputPath
	case condAfter, condBefore:
		return InputTime
	}
	return 0
}

// decide is django-flags' check_state (spec §3): every condition is
// evaluated; on when one non-required condition is true (if there are
// any) and every required one is. A condition that raises fails the whole
// flag closed (ReasonError).
func (f *djangoFlagRule) decide(r *Request, _ *evaluation) Decision {
	if f.raises != "" {
		return Decision{Reason: ReasonError}
	}
	if len(f.conds) == 0 {
		return Decision{Reason: ReasonNoMatch}
	}
	anyOptional, allRequired, byQuery := !f.hasOptional, true, false
	var now pydatetime.Value
	for i := range f.conds {
		c := &f.conds[i]
		ok, err := c.eval(r, f, &now)
		if err != nil {
			return Decision{Reason: ReasonError}
		}
		if c.required {
			allRequired = allRequired && ok
		} else {
			anyOptional = anyOptional || ok
		}
		byQuery = byQuery || (ok && c.kind == condParameter)
	}
	switch {
	case !anyOptional || !allRequired:
		return Decision{Reason: ReasonNoMatch}
	case byQuery:
		return Decision{On: true, Reason: ReasonParameter}
	}
	return Decision{On: true, Reason: ReasonConditions}
}

func (f *djangoFlagRule) inputs() Inputs { return f.in }

func (f *djangoFlagRule) digest(h *digester) {
	h.str(f.raises)
	for _, c := range f.raw {
		h.flag(c.nameNull)
		h.str(c.kind)
		h.num(int64(c.value.kind))
		h.str(c.value.str)
		h.flag(c.value.truthy)
		h.flag(c.required)
	}
}

// djangoVersion reads the major and minor numbers of a Django version
// ("3.2.25", "5.0a1"); an empty version is the newest.
func djangoVersion(v string) (major, minor int, err error) {
	if v == "" {
		return 99, 0, nil
	}
	a, rest, _ := strings.Cut(v, ".")
	if major, err = strconv.Atoi(a); err != nil {
		return 0, 0, fmt.Errorf("version %q: %w", v, err)
	}
	n := 0
	for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
		n++
	}
	if n == 0 {
		return major, 0, nil
	}
	minor, err = strconv.Atoi(rest[:n])
	return major, minor, err
}

// dateGrammar is the (major, minor) whose parse_datetime applies.
func dateGrammar(v string) [2]int {
	major, minor, _ := djangoVersion(v)
	return [2]int{major, minor}
}
