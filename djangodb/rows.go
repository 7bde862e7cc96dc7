package djangodb

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The row types below mirror Django's tables. Their column types accept
// whatever the two drivers return for what Django (or a foreign writer)
// stored, and never fail to scan: a value Django itself could not load makes
// the row invalid instead, so one corrupted row is skipped and reported
// rather than blocking every later load.

// waffleFlagRow is a row of waffle_flag (or of a swapped-in flag table).
type waffleFlagRow struct {
	ID            int64   `db:"id"`
	Name          text    `db:"name"`
	Everyone      pyBool  `db:"everyone"`
	Percent       decimal `db:"percent"`
	Testing       pyBool  `db:"testing"`
	Superusers    pyBool  `db:"superusers"`
	Staff         pyBool  `db:"staff"`
	Authenticated pyBool  `db:"authenticated"`
	Languages     text    `db:"languages"`
	Rollout       pyBool  `db:"rollout"`
	// Informative only (see load_info.go).
	Note     text `db:"note"`
	Created  when `db:"created"`
	Modified when `db:"modified"`
}

// switchRow is a row of waffle_switch.
type switchRow struct {
	Name     text   `db:"name"`
	Active   pyBool `db:"active"`
	Note     text   `db:"note"`
	Created  when   `db:"created"`
	Modified when   `db:"modified"`
}

// sampleRow is a row of waffle_sample.
type sampleRow struct {
	Name     text    `db:"name"`
	Percent  decimal `db:"percent"`
	Note     text    `db:"note"`
	Created  when    `db:"created"`
	Modified when    `db:"modified"`
}

// featureRow is a row of django-feature-flipper's featureflipper_feature.
type featureRow struct {
	Name        text   `db:"name"`
	Enabled     pyBool `db:"enabled"`
	Description text   `db:"description"`
}

// featureFlagRow is a row of the FeatureFlag model's <app>_featureflag.
type featureFlagRow struct {
	ID             int64   `db:"id"`
	Key            text    `db:"key"`
	Enabled        pyBool  `db:"enabled"`
	RolloutPercent integer `db:"rollout_percent"`
}

// flagStateRow is a row of django-flags' flags_flagstate.
type flagStateRow struct {
	ID        int64  `db:"id"`
	Name      text   `db:"name"`
	Condition text   `db:"condition"`
	Value     text   `db:"value"`
	Required  pyBool `db:"required"`
}

// linkRow is a row of an M2M table, with its columns renamed by the query.
type linkRow struct {
	Owner  integer    `db:"owner"`
	Target linkTarget `db:"target"`
}

// linkTarget is the target key of an M2M row (a user's or group's primary
// key), rendered as userKey renders it; Invalid says why no row of the
// target table could have it.
type linkTarget struct {
	Key     string
	Invalid string
}

func (k *linkTarget) Scan(v any) error {
	*k = linkTarget{}
	var u userKey
	switch v.(type) {
	case int64, []byte, string:
		_ = u.Scan(v) // cannot fail for these types
		k.Key = string(u)
	case nil:
		k.Invalid = "NULL in a link column"
	default:
		k.Invalid = fmt.Sprintf("unexpected %T in a link column", v)
	}
	if k.Invalid == "" && !utf8.ValidString(k.Key) {
		k.Invalid = "link key is not valid UTF-8"
	}
	return nil
}

// tooLong returns why t does not fit a Django CharField(max_length=n)
// (Python's len counts code points), or "" when it does.
func tooLong(t text, n int) string {
	if t.Invalid == "" && utf8.RuneCountInString(t.String) > n {
		return fmt.Sprintf("%d characters, more than the column's %d", utf8.RuneCountInString(t.String), n)
	}
	return ""
}

// pyBool is a boolean column read the way Django reads it: SQLite's
// converter maps 0 and 1 to False and True and passes anything else through,
// where Python's truthiness applies; NULL stays NULL.
type pyBool struct {
	Bool  bool
	Valid bool // false for NULL
}

func (b *pyBool) Scan(v any) error {
	*b = pyBool{Valid: v != nil}
	switch x := v.(type) {
	case nil:
	case bool:
		b.Bool = x
	case int64:
		b.Bool = x != 0
	case float64:
		b.Bool = x != 0
	case []byte:
		b.Bool = len(x) > 0
	case string:
		b.Bool = x != ""
	case time.Time:
		b.Bool = true
	default:
		return fmt.Errorf("unsupported boolean value of type %T", v)
	}
	return nil
}

// text is a string column. Invalid holds why Django could not load it.
type text struct {
	String  string
	Invalid string
}

func (t *text) Scan(v any) error {
	*t = text{}
	switch x := v.(type) {
	case nil:
		t.Invalid = "NULL in a NOT NULL text column"
	case string:
		t.String = x
	case []byte:
		t.String = string(x)
	case int64:
		t.String = strconv.FormatInt(x, 10)
	case float64:
		t.String = strconv.FormatFloat(x, 'g', -1, 64)
	default:
		t.Invalid = fmt.Sprintf("unexpected %T in a text column", v)
	}
	if t.Invalid == "" && !utf8.ValidString(t.String) {
		t.Invalid = "text is not valid UTF-8"
	}
	return nil
}

// integer is an integer column.
type integer struct {
	Int     int64
	Invalid string
}

func (n *integer) Scan(v any) error {
	*n = integer{}
	switch x := v.(type) {
	case int64:
		n.Int = x
	case []byte, string:
		s := fmt.Sprint(x)
		if b, ok := x.([]byte); ok {
			s = string(b)
		}
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			n.Invalid = fmt.Sprintf("%q is not an integer", s)
		}
		n.Int = i
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			n.Invalid = fmt.Sprintf("%v is not an integer", x)
		}
		n.Int = int64(x)
	case nil:
		n.Invalid = "NULL in a NOT NULL integer column"
	default:
		n.Invalid = fmt.Sprintf("unexpected %T in an integer column", v)
	}
	return nil
}

// decimal is a DecimalField with one decimal place (waffle's percent). Like
// Django, it rounds what is stored to one place (half to even, after
// reading a float with 15 significant digits); Limit, set by the caller,
// is the bound Django's max_digits puts on the rounded value.
type decimal struct {
	Tenths  int64
	Valid   bool // false for NULL
	Invalid string
}

func (d *decimal) Scan(v any) error {
	*d = decimal{Valid: v != nil}
	var s string
	switch x := v.(type) {
	case nil:
		return nil
	case int64:
		s = strconv.FormatInt(x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			d.Invalid = fmt.Sprintf("%v is not a decimal", x)
			return nil
		}
		s = strconv.FormatFloat(x, 'g', 15, 64)
	case []byte:
		s = string(x)
	case string:
		s = x
	default:
		d.Invalid = fmt.Sprintf("unexpected %T in a decimal column", v)
		return nil
	}
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		d.Invalid = fmt.Sprintf("%q is not a decimal", s)
		return nil
	}
	t, err := roundTenths(r)
	if err != nil {
		d.Invalid = fmt.Sprintf("%q: %v", s, err)
		return nil
	}
	d.Tenths = t
	return nil
}

// roundTenths returns r×10 rounded half to even.
func roundTenths(r *big.Rat) (int64, error) {
	x := new(big.Rat).Mul(r, big.NewRat(10, 1))
	q, m := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	// Compare 2|m| with the denominator to decide the rounding direction.
	twice := new(big.Int).Abs(m)
	twice.Lsh(twice, 1)
	switch c := twice.Cmp(x.Denom()); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		if m.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		return 0, errors.New("out of range")
	}
	return q.Int64(), nil
}

// inRange reports whether the rounded value fits max_digits total digits
// with one decimal place, and returns Django's error otherwise.
func (d *decimal) inRange(maxDigits int) string {
	limit := int64(math.Pow10(maxDigits))
	if d.Valid && d.Invalid == "" && (d.Tenths >= limit || d.Tenths <= -limit) {
		return fmt.Sprintf("%s needs more than %d digits, which Django refuses to load", tenthsString(d.Tenths), maxDigits)
	}
	return d.Invalid
}

func tenthsString(t int64) string {
	sign := ""
	if t < 0 {
		sign, t = "-", -t
	}
	return fmt.Sprintf("%s%d.%d", sign, t/10, t%10)
}

// userKey is a user primary key rendered as Python's str(pk) renders it:
// decimal for integer keys, lower-case hyphenated for UUIDs (which Django
// stores as 32 hex digits on SQLite).
type userKey string

func (k *userKey) Scan(v any) error {
	switch x := v.(type) {
	case int64:
		*k = userKey(strconv.FormatInt(x, 10))
	case []byte:
		*k = userKey(normalizeUUID(string(x)))
	case string:
		*k = userKey(normalizeUUID(x))
	default:
		return fmt.Errorf("unsupported user key of type %T", v)
	}
	return nil
}

// normalizeUUID hyphenates a 32-digit hex UUID and lower-cases any UUID;
// other strings are returned unchanged.
func normalizeUUID(s string) string {
	isHex := func(s string) bool {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		return true
	}
	switch {
	case len(s) == 32 && isHex(s):
		s = strings.ToLower(s)
		return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
	case len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' &&
		isHex(strings.ReplaceAll(s, "-", "")):
		return strings.ToLower(s)
	}
	return s
}
