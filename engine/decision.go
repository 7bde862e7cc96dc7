package engine

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Reason says which rule produced a decision. It is a small number, so
// that decisions hold no pointers (a snapshot of a thousand flags decides
// a thousand on every request); its text, from String and in JSON, is the
// name listed with each reason. The zero Reason is no reason, "".
type Reason uint8

// The reasons a decision can have. Reasons that come from the site-wide rows
// (and the visitor's identity) have an empty Origin; the others come from
// something the request carried, or from a fresh random roll made for this
// request, and are reported as the decision's source.
const (
	ReasonEveryone        Reason = iota + 1 // waffle everyone column
	ReasonOverride                          // WAFFLE_OVERRIDE query parameter
	ReasonTestingQuery                      // waffle testing mode, dwft_ parameter
	ReasonTestingHeader                     // waffle testing mode, dwft- header
	ReasonTestingCookie                     // waffle testing mode, dwft_ cookie
	ReasonLanguage                          // waffle languages column
	ReasonAuthenticated                     // waffle authenticated column
	ReasonStaff                             // waffle staff column
	ReasonSuperuser                         // waffle superusers column
	ReasonUser                              // listed user (waffle users, FeatureFlag allowed_users)
	ReasonGroup                             // waffle groups
	ReasonPercentCookie                     // waffle dwf_ cookie
	ReasonPercentRoll                       // waffle fresh percentage roll
	ReasonNoMatch                           // no rule switched it on
	ReasonActive                            // switch active column, feature-flipper enabled
	ReasonSample                            // waffle sample draw
	ReasonDisabled                          // FeatureFlag enabled = false
	ReasonRollout                           // FeatureFlag rollout_percent >= 100
	ReasonBucket                            // FeatureFlag deterministic bucket
	ReasonConflict                          // the name is defined by two sources
	ReasonConditions                        // django-flags conditions met
	ReasonParameter                         // django-flags conditions met, a parameter condition among them
	ReasonError                             // the library would raise: off (fail closed)
	ReasonOverrideURL                       // flagproxy URL override
	ReasonOverrideSession                   // flagproxy session override
)

// reasonNames are the reasons' texts.
var reasonNames = [...]string{
	ReasonEveryone:        "everyone",
	ReasonOverride:        "override",
	ReasonTestingQuery:    "testing-query",
	ReasonTestingHeader:   "testing-header",
	ReasonTestingCookie:   "testing-cookie",
	ReasonLanguage:        "language",
	ReasonAuthenticated:   "authenticated",
	ReasonStaff:           "staff",
	ReasonSuperuser:       "superuser",
	ReasonUser:            "user",
	ReasonGroup:           "group",
	ReasonPercentCookie:   "percent-cookie",
	ReasonPercentRoll:     "percent-roll",
	ReasonNoMatch:         "no-match",
	ReasonActive:          "active",
	ReasonSample:          "sample",
	ReasonDisabled:        "disabled",
	ReasonRollout:         "rollout",
	ReasonBucket:          "bucket",
	ReasonConflict:        "conflict",
	ReasonConditions:      "conditions",
	ReasonParameter:       "parameter",
	ReasonError:           "error",
	ReasonOverrideURL:     "url",
	ReasonOverrideSession: "session",
}

// String returns the reason's name ("percent-cookie"); "" for the zero
// Reason.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason-" + strconv.Itoa(int(r))
}

// MarshalText writes the reason's name.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a reason's name ("" for the zero Reason).
func (r *Reason) UnmarshalText(b []byte) error {
	v, ok := ReasonNamed(string(b))
	if !ok {
		return fmt.Errorf("unknown reason %q", b)
	}
	*r = v
	return nil
}

// ReasonNamed returns the reason whose name is name.
func ReasonNamed(name string) (Reason, bool) {
	for i, n := range reasonNames {
		if n == name {
			return Reason(i), true
		}
	}
	return 0, false
}

// Origin returns the request input a decision came from ("url", "session",
// "query", "header", "cookie"), "roll" for a waffle percentage decided by a
// fresh random roll (its dwf_ cookie is set on this response, so the value
// differs between requests until the browser sends it back), or "" when it
// came from the site-wide rows.
func (r Reason) Origin() string {
	switch r {
	case ReasonPercentRoll:
		return "roll"
	case ReasonOverrideURL:
		return "url"
	case ReasonOverrideSession:
		return "session"
	case ReasonOverride, ReasonTestingQuery, ReasonParameter:
		return "query"
	case ReasonTestingHeader:
		return "header"
	case ReasonTestingCookie, ReasonPercentCookie:
		return "cookie"
	}
	return ""
}

// Decision is the outcome for one flag, switch or sample.
type Decision struct {
	On     bool   `json:"on"`
	Reason Reason `json:"reason"`
}

// Cookie is a cookie that django-waffle's middleware would write on the
// response. MaxAge 0 means a browser-session cookie (no Max-Age, no Expires).
type Cookie struct {
	// Flag names the waffle flag the cookie belongs to (dwf_ and dwft_
	// cookies); empty for any other cookie.
	Flag   string
	Name   string
	Value  string
	MaxAge int
	Secure bool
	// Refresh is set on a cookie that re-issues the value the request's
	// cookie already holds: writing it only renews its expiry.
	Refresh bool
}

// Decisions holds the outcome of one evaluation. Flags, Switches and Samples
// are parallel to the snapshot's FlagNames, SwitchNames and SampleNames.
type Decisions struct {
	Flags    []Decision
	Switches []Decision
	Samples  []Decision
	// Cookies are the cookies waffle would write, percentage cookies first
	// (in flag name order), then testing cookies. Evaluate leaves room
	// after them for one more, so that a caller adding its own (flagproxy
	// adds a renewal marker) does not copy the list.
	Cookies []Cookie
}

// Subject is the visitor as Django's authentication sees it.
type Subject struct {
	// UserID is the user's primary key as text: decimal for integer keys,
	// lower-case hyphenated for UUID keys. It is empty for anonymous visitors.
	UserID string
	// Username is the value of the user model's USERNAME_FIELD, as text
	// (django-flags' user condition compares it); empty for anonymous
	// visitors.
	Username      string
	Authenticated bool
	// Active is is_active. Django's default ModelBackend never lets an
	// inactive user log in; AllowAllUsersModelBackend does.
	Active    bool
	Staff     bool
	Superuser bool
	// Groups holds the ids of the user's auth_group rows.
	Groups []int64
	// Permissions holds the user's ModelBackend permissions,
	// "app_label.codename", sorted; see HasPerm.
	Permissions []string
	// Stale is set when the identity was served from a cache past its TTL
	// because the database could not be read to re-check it.
	Stale bool
	// FeatureStatus holds django-feature-flipper's feature_status_<name>
	// entries of the visitor's Django session (logged in or not): name →
	// value == "enabled". Read-only once built.
	FeatureStatus map[string]bool
}

// maxFlipName bounds a flippable name (waffle's names are at most 100
// characters, feature-flipper's 40, FeatureFlag keys 50).
const maxFlipName = 100

// FlippableName reports whether django-feature-flipper could flip a
// feature called name: what ^enable_(\w+)$ captures with Python 2's ASCII
// \w, one or more letters, digits or underscores.
func FlippableName(name string) bool {
	if name == "" || len(name) > maxFlipName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// HasPerm answers as Django's user.has_perm(perm) with ModelBackend: an
// active superuser has every permission, an inactive user none, anyone
// else those in Permissions (exact, case-sensitive).
func (s *Subject) HasPerm(perm string) bool {
	if !s.Authenticated || !s.Active {
		return false
	}
	if s.Superuser {
		return true
	}
	_, ok := slices.BinarySearch(s.Permissions, perm)
	return ok
}

// Anonymous is the subject of a visitor without a valid session.
var Anonymous = Subject{}

func (s *Subject) inGroups(set map[int64]struct{}) bool {
	for _, g := range s.Groups {
		if _, ok := set[g]; ok {
			return true
		}
	}
	return false
}

// Overrides are per-visitor flag overrides decided outside the flag tables:
// feature-flipper's URL and session overrides, already checked against the
// visitor's permission. A name maps to the state it forces.
type Overrides struct {
	URL     map[string]bool `json:"url,omitempty"`
	Session map[string]bool `json:"session,omitempty"`
	// Allowed says whether the visitor may flip: URL and stored session
	// overrides apply only then (feature_status_ entries of the Django
	// session apply to everyone).
	Allowed bool `json:"allowed"`
	// Refused lists the override parameters of the request that were not
	// applied, and why (see overrides.go). Evaluate does not read it.
	Refused []Refusal `json:"refused,omitempty"`
}

// Values looks up request values by name, the way Django's QueryDict or
// request.COOKIES do after parsing (the last duplicate has already won).
type Values interface {
	Get(name string) (value string, ok bool)
}

// Request is what one HTTP request contributes to an evaluation, already
// parsed the way Django parses it. Nil Values mean "nothing".
type Request struct {
	Subject Subject
	// Query is the query string (request.GET).
	Query Values
	// Cookies is request.COOKIES.
	Cookies Values
	// Header looks up a request header by name, case-insensitively.
	Header Values
	// Language is request.LANGUAGE_CODE; HasLanguage is false when Django's
	// LocaleMiddleware would not set it.
	Language    string
	HasLanguage bool
	// Path is request.path: the URL path percent-decoded as Django decodes
	// it (see DjangoPath).
	Path string
	// RawQuery is the query string as sent, for Django's limit on the
	// number of fields.
	RawQuery string
	// Now is the time of the request (django.utils.timezone.now()).
	Now       time.Time
	Overrides Overrides
}

// Rand is a source of uniform random numbers in [0, 1), such as
// math/rand/v2's *Rand.
type Rand interface {
	Float64() float64
}
