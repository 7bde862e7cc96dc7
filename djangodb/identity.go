package djangodb

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/flagproxy/flagproxy/engine"
)

// Session engines flagproxy reads (SESSION_ENGINE).
const (
	EngineDB            = "django.contrib.sessions.backends.db"
	EngineCachedDB      = "django.contrib.sessions.backends.cached_db"
	EngineSignedCookies = "django.contrib.sessions.backends.signed_cookies"
)

// The authentication backends whose get_user and has_perm flagproxy
// reproduces.
const (
	backendModel            = "django.contrib.auth.backends.ModelBackend"
	backendAllowAll         = "django.contrib.auth.backends.AllowAllUsersModelBackend"
	backendRemote           = "django.contrib.auth.backends.RemoteUserBackend"
	backendAllowAllRemote   = "django.contrib.auth.backends.AllowAllUsersRemoteUserBackend"
	authHashSalt            = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"
	signedCookiesSalt       = "django.contrib.sessions.backends.signed_cookies"
	DefaultSessionStoreName = "SessionStore"
)

// SessionConfig holds the Django settings that decide who a visitor is.
// Zero fields take Django's defaults.
type SessionConfig struct {
	// DjangoVersion selects the version's rules ("3.2", "4.1.8", "6.1", …):
	// 3.1/3.2 also accept SHA-1 signatures and auth hashes and the pre-3.1
	// session format; 4.1+ try SECRET_KEY_FALLBACKS for signatures and
	// 4.1.8+ for auth hashes. Default: the newest rules.
	DjangoVersion      string
	SecretKey          string
	SecretKeyFallbacks []string
	// DefaultHashingAlgorithm is 3.1/3.2's DEFAULT_HASHING_ALGORITHM
	// ("sha256" or "sha1").
	DefaultHashingAlgorithm string
	Engine                  string // SESSION_ENGINE
	// StoreQualname is the __qualname__ of the engine's SessionStore
	// class; it names the signing salt. Required for a custom engine,
	// which must keep its sessions in django_session.
	StoreQualname string
	// CookieAge is SESSION_COOKIE_AGE, the signed_cookies engine's max age.
	// It has no default: zero means what Django does with 0.
	CookieAge              time.Duration
	UseTZ                  bool // USE_TZ: how SQLite stores expire_date
	TimeZone               *time.Location
	AuthUserModel          string // AUTH_USER_MODEL, "app_label.ModelName"
	// UsernameField is the user model's USERNAME_FIELD column; its value
	// becomes Subject.Username. Default "username".
	UsernameField          string
	AuthenticationBackends []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// versionRules are what one Django version accepts.
type versionRules struct {
	sigAlgs           []algorithm
	sigFallbacks      bool
	hashAlgs          []algorithm
	hashFallbacks     bool
	legacySessionData bool
}

// ParseVersion reads a Django version, "major.minor[.patch]", of 3.2 to
// 6.x; "" means the newest rules flagproxy knows (6.1).
func ParseVersion(v string) (major, minor, patch int, err error) {
	if v == "" {
		return 6, 1, 0, nil
	}
	parts := strings.Split(v, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, 0, 0, fmt.Errorf("version %q of Django: want major.minor[.patch]", v)
	}
	nums := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, 0, 0, fmt.Errorf("version %q of Django: want major.minor[.patch]", v)
		}
		nums[i] = n
	}
	major, minor, patch = nums[0], nums[1], nums[2]
	if major < 3 || major == 3 && minor < 2 || major > 6 {
		return 0, 0, 0, fmt.Errorf("version %q of Django: flagproxy follows Django 3.2 to 6.x", v)
	}
	return major, minor, patch, nil
}

func rulesFor(c SessionConfig) (versionRules, error) {
	major, minor, patch, err := ParseVersion(c.DjangoVersion)
	if err != nil {
		return versionRules{}, err
	}
	at := func(M, m, p int) bool {
		return major > M || major == M && (minor > m || minor == m && patch >= p)
	}
	r := versionRules{sigAlgs: []algorithm{sha256Alg}, hashAlgs: []algorithm{sha256Alg}}
	if major == 3 {
		primary := sha256Alg
		switch c.DefaultHashingAlgorithm {
		case "", "sha256":
		case "sha1":
			primary = sha1Alg
		default:
			return r, fmt.Errorf("DEFAULT_HASHING_ALGORITHM %q: want sha256 or sha1", c.DefaultHashingAlgorithm)
		}
		algs := slices.Compact([]algorithm{primary, sha1Alg})
		r.sigAlgs, r.hashAlgs, r.legacySessionData = algs, algs, true
	}
	r.sigFallbacks = at(4, 1, 0)
	r.hashFallbacks = at(4, 1, 8)
	return r, nil
}

// userTables are the tables of AUTH_USER_MODEL (spec/django-sessions.md §4.2).
type userTables struct {
	user, groups, perms, col string
}

func userTablesFor(model string) (userTables, error) {
	app, name, ok := strings.Cut(model, ".")
	if !ok || app == "" || name == "" || strings.Contains(name, ".") {
		return userTables{}, fmt.Errorf("AUTH_USER_MODEL %q: want \"app_label.ModelName\"", model)
	}
	u := strings.ToLower(app + "_" + name)
	t := userTables{user: u, groups: u + "_groups", perms: u + "_user_permissions", col: strings.ToLower(name) + "_id"}
	for _, n := range []string{t.user, t.groups, t.perms} {
		if !identifier.MatchString(n) {
			return t, fmt.Errorf("AUTH_USER_MODEL %q: table %q is not a plain SQL identifier", model, n)
		}
	}
	return t, nil
}

// Identities resolves Django session cookies to users, reading the session
// and auth tables directly. It is safe for concurrent use and caches
// nothing: see IdentityCache.
type Identities struct {
	db        *sqlx.DB
	dialect   Dialect
	cfg       SessionConfig
	rules     versionRules
	sig       signer
	hashKeys  []string
	salt      string
	className string
	signed    bool
	tables    userTables
	backends  map[string]bool // configured and understood
	modelPerm bool            // a ModelBackend-like backend answers has_perm
	// permsExact is false when a configured backend is one flagproxy does
	// not reproduce: then only the active-superuser shortcut grants.
	permsExact bool
	now        func() time.Time

	shapeCache atomic.Pointer[userShape] // read on first use
}

type userShape struct {
	uuid                                  bool
	int32Key                              bool // PostgreSQL integer (not bigint) id
	hasActive, hasStaff, hasSuper, hasGrp bool
	hasUsername                           bool
}

// NewIdentities checks cfg (see SessionConfig) and returns an Identities.
func NewIdentities(db *sqlx.DB, dialect Dialect, cfg SessionConfig) (*Identities, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	rules, _ := rulesFor(cfg)
	tables, _ := userTablesFor(cfg.AuthUserModel)
	ids := &Identities{db: db, dialect: dialect, cfg: cfg, rules: rules, tables: tables, now: cfg.Now}
	if ids.now == nil {
		ids.now = time.Now
	}
	keys := []string{cfg.SecretKey}
	ids.sig = signer{keys: keys, algs: rules.sigAlgs}
	if rules.sigFallbacks {
		ids.sig.keys = append(slices.Clone(keys), cfg.SecretKeyFallbacks...)
	}
	ids.hashKeys = keys
	if rules.hashFallbacks {
		ids.hashKeys = append(slices.Clone(keys), cfg.SecretKeyFallbacks...)
	}
	ids.signed = cfg.Engine == EngineSignedCookies
	ids.salt = "django.contrib.sessions." + cfg.StoreQualname
	if ids.signed {
		ids.salt = signedCookiesSalt
	}
	ids.className = cfg.StoreQualname[strings.LastIndexByte(cfg.StoreQualname, '.')+1:]
	ids.backends = map[string]bool{}
	ids.permsExact = true
	for _, b := range cfg.AuthenticationBackends {
		switch b {
		case backendModel, backendAllowAll, backendRemote, backendAllowAllRemote:
			ids.backends[b] = true
			ids.modelPerm = true
		default:
			// Django asks every backend; one flagproxy cannot reproduce
			// might grant or deny (PermissionDenied), so permissions fail
			// closed.
			ids.permsExact = false
		}
	}
	return ids, nil
}

func builtinEngine(e string) bool {
	return e == EngineDB || e == EngineCachedDB || e == EngineSignedCookies
}

func (c SessionConfig) withDefaults() SessionConfig {
	if c.Engine == "" {
		c.Engine = EngineDB
	}
	if c.StoreQualname == "" && builtinEngine(c.Engine) {
		c.StoreQualname = DefaultSessionStoreName
	}
	if c.TimeZone == nil {
		c.TimeZone = time.UTC
	}
	if c.AuthUserModel == "" {
		c.AuthUserModel = "auth.User"
	}
	if c.UsernameField == "" {
		c.UsernameField = "username"
	}
	if c.AuthenticationBackends == nil {
		c.AuthenticationBackends = []string{backendModel}
	}
	return c
}

// Validate reports every problem of c at once.
func (c SessionConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, err := rulesFor(c); err != nil {
		errs = append(errs, err)
	}
	if _, err := userTablesFor(c.AuthUserModel); err != nil {
		errs = append(errs, err)
	}
	switch {
	case builtinEngine(c.Engine):
	case strings.HasPrefix(c.Engine, "django.contrib.sessions.backends."):
		// The cache and file engines keep sessions out of flagproxy's reach.
		errs = append(errs, fmt.Errorf("SESSION_ENGINE %q: flagproxy reads the db, cached_db and signed_cookies engines, and custom engines that store sessions in django_session", c.Engine))
	case c.StoreQualname == "":
		// Only an engine known to keep its sessions in django_session may
		// be read there: leftover rows would otherwise log people in.
		errs = append(errs, fmt.Errorf("SESSION_ENGINE %q is a custom engine: if it stores sessions in django_session, name its SessionStore class's __qualname__ (SESSION_STORE_QUALNAME)", c.Engine))
	}
	if c.DjangoVersion == "" && len(c.SecretKeyFallbacks) > 0 {
		errs = append(errs, errors.New("SECRET_KEY_FALLBACKS is set but the Django version is not: Django honours fallbacks from 4.1 (signatures) and 4.1.8 (auth hashes), so name the version (DJANGO_VERSION or --django-version)"))
	}
	if c.CookieAge < 0 {
		errs = append(errs, fmt.Errorf("SESSION_COOKIE_AGE %v is negative", c.CookieAge))
	}
	if !identifier.MatchString(c.UsernameField) {
		errs = append(errs, fmt.Errorf("FLAGPROXY_USERNAME_FIELD %q is not a plain column name", c.UsernameField))
	}
	return errors.Join(errs...)
}

// maxSessionKey is django_session.session_key's length (varchar(40)): a
// longer value matches no row.
const maxSessionKey = 40

// Plausible reports whether value could name a session at all, without
// touching the database: at least 8 characters (Django ignores shorter
// keys), and for db-backed engines at most 40 and no NUL (no row can have
// such a key); for signed_cookies, a signature that verifies. Callers use
// it to keep garbage from spending the lookup budget.
func (ids *Identities) Plausible(value string) bool {
	if utf8.RuneCountInString(value) < 8 {
		return false
	}
	if ids.signed {
		_, err := ids.sig.unsign(value, ids.salt)
		return err == nil
	}
	return len(value) <= maxSessionKey && !strings.ContainsRune(value, 0) && utf8.ValidString(value)
}

// Resolve returns the visitor a session cookie value stands for, with the
// reason, and the time after which the answer must be asked again (the
// session row's expiry; zero when not bounded). Any failure to verify the
// session is an anonymous visitor with a reason and a nil error; only
// database errors return an error (and an anonymous subject).
func (ids *Identities) Resolve(ctx context.Context, value string) (engine.Subject, Reason, time.Time, error) {
	if value == "" {
		return engine.Anonymous, ReasonNoCookie, time.Time{}, nil
	}
	// Django: a key shorter than 8 characters is no key at all.
	if utf8.RuneCountInString(value) < 8 {
		return engine.Anonymous, ReasonShortKey, time.Time{}, nil
	}
	if !ids.signed && !ids.Plausible(value) {
		return engine.Anonymous, ReasonNoRow, time.Time{}, nil
	}
	now := ids.now()
	var session map[string]any
	var until time.Time
	var err error
	if ids.signed {
		var signed time.Time
		session, signed, err = ids.sig.loadsAt(value, ids.salt, ids.cfg.CookieAge, now)
		// Valid while now - signed <= SESSION_COOKIE_AGE.
		until = signed.Add(ids.cfg.CookieAge).Add(time.Nanosecond)
	} else {
		var data string
		data, until, err = ids.sessionRow(ctx, value, now)
		if err == nil {
			session, err = ids.sig.loads(data, ids.salt, noMaxAge, now)
			if ReasonOf(err) == ReasonBadSignature && ids.rules.legacySessionData {
				session, err = legacyLoads(data, ids.className, ids.cfg.SecretKey)
			}
		}
	}
	if err != nil {
		if ReasonOf(err) == ReasonDatabaseError {
			return engine.Anonymous, ReasonDatabaseError, time.Time{}, err
		}
		return engine.Anonymous, ReasonOf(err), until, nil
	}
	s, reason, err := ids.user(ctx, session)
	if err == nil && reason != ReasonHashMissing && reason != ReasonHashMismatch {
		// Django flushes the session only on a missing or wrong auth hash;
		// otherwise its data, feature-flipper's entries included, stays.
		s.FeatureStatus = featureStatus(session)
	}
	return s, reason, until, err
}

// featureStatus extracts django-feature-flipper's entries from a session:
// each key ^feature_status_(\w+)$ (one trailing newline tolerated, as
// Python's $ does) gives name → (value == "enabled").
func featureStatus(session map[string]any) map[string]bool {
	var out map[string]bool
	for k, v := range session {
		name, ok := strings.CutPrefix(strings.TrimSuffix(k, "\n"), "feature_status_")
		if !ok || !engine.FlippableName(name) {
			continue
		}
		if out == nil {
			out = map[string]bool{}
		}
		s, _ := v.(string)
		out[name] = s == "enabled"
	}
	return out
}

// sessionRow reads the live django_session row for key.
func (ids *Identities) sessionRow(ctx context.Context, key string, now time.Time) (string, time.Time, error) {
	var row struct {
		Data   string `db:"session_data"`
		Expire any    `db:"expire_date"`
	}
	var err error
	if ids.dialect == Postgres {
		err = ids.db.GetContext(ctx, &row, `SELECT session_data, expire_date FROM django_session WHERE session_key = $1 AND expire_date > $2`, key, now)
	} else {
		// Django compares SQLite's naive text with now formatted the same
		// way: UTC with USE_TZ, TIME_ZONE's wall clock without.
		loc := time.UTC
		if !ids.cfg.UseTZ {
			loc = ids.cfg.TimeZone
		}
		err = ids.db.GetContext(ctx, &row, `SELECT session_data, CAST(expire_date AS TEXT) AS expire_date FROM django_session WHERE session_key = ? AND expire_date > ?`,
			key, pythonDatetime(now.In(loc)))
	}
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, reject(ReasonNoRow, nil)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("read django_session: %w", err)
	}
	return row.Data, ids.expiry(row.Expire), nil
}

// expiry turns the row's expire_date into an instant (zero if unreadable).
func (ids *Identities) expiry(v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x
	case string, []byte:
		loc := time.UTC
		if !ids.cfg.UseTZ {
			loc = ids.cfg.TimeZone
		}
		s := fmt.Sprint(x)
		if b, ok := x.([]byte); ok {
			s = string(b)
		}
		for _, layout := range []string{"2006-01-02 15:04:05.999999", "2006-01-02T15:04:05.999999"} {
			if t, err := time.ParseInLocation(layout, s, loc); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// pythonDatetime formats t as str(datetime) does: microseconds only when
// non-zero, which is how Django writes and compares SQLite datetimes.
func pythonDatetime(t time.Time) string {
	t = t.Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

// user applies django.contrib.auth.get_user to a verified session.
func (ids *Identities) user(ctx context.Context, session map[string]any) (engine.Subject, Reason, error) {
	rawID, hasID := session["_auth_user_id"]
	backend, hasBackend := session["_auth_user_backend"].(string)
	if !hasID || rawID == nil || !hasBackend {
		if hasID && !hasBackend {
			return engine.Anonymous, ReasonBackend, nil
		}
		return engine.Anonymous, ReasonAnonymousSession, nil
	}
	if !slices.Contains(ids.cfg.AuthenticationBackends, backend) || !ids.backends[backend] {
		return engine.Anonymous, ReasonBackend, nil
	}
	shape, err := ids.userShape(ctx)
	if err != nil {
		return engine.Anonymous, ReasonDatabaseError, err
	}
	pk, ok := toPK(rawID, shape.uuid)
	if !ok {
		return engine.Anonymous, ReasonUserNotFound, nil
	}
	u, found, err := ids.userRow(ctx, shape, pk)
	if err != nil {
		return engine.Anonymous, ReasonDatabaseError, err
	}
	if !found {
		return engine.Anonymous, ReasonUserNotFound, nil
	}
	if !u.active && (backend == backendModel || backend == backendRemote) {
		return engine.Anonymous, ReasonUserInactive, nil
	}
	h, _ := session["_auth_user_hash"].(string)
	if h == "" {
		return engine.Anonymous, ReasonHashMissing, nil
	}
	if !ids.hashMatches(h, u.password) {
		return engine.Anonymous, ReasonHashMismatch, nil
	}
	sub, err := ids.subject(ctx, shape, pk, u)
	if err != nil {
		return engine.Anonymous, ReasonDatabaseError, err
	}
	return sub, ReasonAuthenticated, nil
}

// subject builds the logged-in subject of user pk: its flags, groups and
// (when a ModelBackend-like backend is configured) permissions.
func (ids *Identities) subject(ctx context.Context, shape *userShape, pk string, u userRow) (engine.Subject, error) {
	s := engine.Subject{UserID: pk, Username: u.username, Authenticated: true, Active: u.active, Staff: u.staff, Superuser: u.superuser}
	var err error
	if s.Groups, err = ids.groups(ctx, shape, pk); err != nil {
		return engine.Anonymous, err
	}
	if ids.modelPerm && ids.permsExact && u.active && !u.superuser {
		if s.Permissions, err = ids.permissions(ctx, shape, pk); err != nil {
			return engine.Anonymous, err
		}
	}
	return s, nil
}

// User returns the subject of the user whose primary key is pk, as a
// session of that user would make it (callers that name a user rather than
// send a cookie: explain, OFREP). An unknown user, or an inactive one where
// the ModelBackend would refuse it, is anonymous.
func (ids *Identities) User(ctx context.Context, pk string) (engine.Subject, error) {
	shape, err := ids.userShape(ctx)
	if err != nil {
		return engine.Anonymous, err
	}
	pk, ok := toPK(pk, shape.uuid)
	if !ok {
		return engine.Anonymous, nil
	}
	u, found, err := ids.userRow(ctx, shape, pk)
	if err != nil || !found {
		return engine.Anonymous, err
	}
	if !u.active && (ids.backends[backendModel] || ids.backends[backendRemote]) &&
		!ids.backends[backendAllowAll] && !ids.backends[backendAllowAllRemote] {
		return engine.Anonymous, nil
	}
	return ids.subject(ctx, shape, pk, u)
}

func (ids *Identities) hashMatches(h, password string) bool {
	for _, k := range ids.hashKeys {
		for _, a := range ids.rules.hashAlgs {
			want := fmt.Sprintf("%x", saltedHMAC(authHashSalt, []byte(password), k, a))
			if hmacEqual(h, want) {
				return true
			}
		}
	}
	return false
}

// toPK converts _auth_user_id as the pk field's to_python would: int() for
// integer keys (a string with optional sign, whitespace and digit
// underscores, or a JSON number, truncated), uuid.UUID() for UUID keys. It
// returns the key as Python's str(pk) renders it.
func toPK(v any, isUUID bool) (string, bool) {
	if isUUID {
		s, ok := v.(string)
		if !ok {
			return "", false
		}
		return parsePythonUUID(s)
	}
	switch x := v.(type) {
	case string:
		return parsePythonInt(x)
	case jsonNumber:
		if i, err := x.Int64(); err == nil {
			return strconv.FormatInt(i, 10), true
		}
		if f, err := x.Float64(); err == nil {
			r, _ := new(big.Float).SetFloat64(f).Int(nil)
			return r.String(), true
		}
	case bool:
		// int(True) is 1 in Python.
		if x {
			return "1", true
		}
		return "0", true
	}
	return "", false
}

// parsePythonInt accepts what Python's int(str) accepts for base 10, with
// ASCII digits (a session naming a user with other Unicode digits is
// treated as naming no user).
func parsePythonInt(s string) (string, bool) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	sign := ""
	if s != "" && (s[0] == '+' || s[0] == '-') {
		if s[0] == '-' {
			sign = "-"
		}
		s = s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return "", false
	}
	digits := strings.ReplaceAll(s, "_", "")
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", false
		}
	}
	n, ok := new(big.Int).SetString(sign+digits, 10)
	if !ok {
		return "", false
	}
	return n.String(), true
}

// parsePythonUUID accepts what uuid.UUID(str) accepts: 32 hex digits after
// removing braces, "urn:uuid:" and hyphens.
func parsePythonUUID(s string) (string, bool) {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "urn:", ""), "uuid:", "")
	s = strings.Trim(s, "{}")
	s = strings.ReplaceAll(s, "-", "")
	if len(s) != 32 {
		return "", false
	}
	n := normalizeUUID(s)
	if n == s {
		return "", false
	}
	return n, true
}

func hmacEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

type jsonNumber = json.Number
