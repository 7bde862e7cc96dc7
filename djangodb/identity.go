package djangodb

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"
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
	CookieAge     time.Duration
	UseTZ         bool // USE_TZ: how SQLite stores expire_date
	TimeZone      *time.Location
	AuthUserModel string // AUTH_USER_MODEL, "app_label.ModelName"
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
	// backendNames holds each of backends, shared by the sessions that
	// name it (see identityOf).
	backendNames map[string]string
	modelPerm    bool // a ModelBackend-like backend answers has_perm
	// permsExact is false when a configured backend is one flagproxy does
	// not reproduce: then only the active-superuser shortcut grants.
	permsExact bool
	now        func() time.Time

	shapeCache atomic.Pointer[userShape] // read on first use
	// decoded holds session data that verified, by the data's SHA-256
	// digest (never by session key), so that a re-check of an unchanged
	// session does not decode it again. It holds DefaultIdentityEntries:
	// with a larger identity cache, re-checks of the sessions beyond that
	// decode again (correct, and slower).
	decoded *lru.Cache[[32]byte, *decodedSession]
}

// decodedSession is session data that verified: what identifies its
// visitor, and a digest of the user's password hash its auth hash last
// matched, so that a re-check of an unchanged session and password does
// not compute the HMAC again (the same inputs match the same way).
type decodedSession struct {
	identity sessionIdentity
	mu       sync.Mutex
	// matched is the SHA-256 digest of the password hash last matched, when
	// hasMatched: a digest, so that the password's string is not kept.
	matched    [sha256.Size]byte
	hasMatched bool
}

// sessionIdentity is what of a session's data identifies the visitor:
// Django's _auth_user_ entries and feature-flipper's. ids.decoded keeps
// one for every session it knows, which the collector marks on every
// cycle: a struct, not the decoder's map of boxed values.
type sessionIdentity struct {
	// hasID is set when _auth_user_id is present, nullID when it is null.
	// intPK and uuidPK are its value as the primary key's to_python makes
	// it for an integer key and for a UUID key (see toPK), when it makes
	// one (intOK, uuidOK): the key's type is only known from the table.
	hasID, nullID bool
	intPK, uuidPK string
	intOK, uuidOK bool
	// backend is _auth_user_backend, when present and a string
	// (hasBackend); a configured backend's name is shared, not copied.
	backend    string
	hasBackend bool
	hash       string          // _auth_user_hash, when a string
	features   map[string]bool // feature-flipper's entries; nil for none; read-only
}

type userShape struct {
	uuid                                  bool
	int32Key                              bool // PostgreSQL integer (not bigint) id
	hasActive, hasStaff, hasSuper, hasGrp bool
	hasUsername                           bool
	hasPerms                              bool // the user permissions table exists
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
	ids.decoded, _ = lru.New[[32]byte, *decodedSession](DefaultIdentityEntries)
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
	ids.backends, ids.backendNames = map[string]bool{}, map[string]string{}
	ids.permsExact = true
	for _, b := range cfg.AuthenticationBackends {
		switch b {
		case backendModel, backendAllowAll, backendRemote, backendAllowAllRemote:
			ids.backends[b] = true
			ids.backendNames[b] = b
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
// database errors return an error (and an anonymous subject). It is
// ResolveBatch of one value.
func (ids *Identities) Resolve(ctx context.Context, value string) (engine.Subject, Reason, time.Time, error) {
	out, _ := ids.ResolveBatch(ctx, []string{value})
	r := out[0]
	return r.Subject, r.Reason, r.Until, r.Err
}

// verified is a session whose data verified, waiting for its user.
type verified struct {
	i       int // the value's index in the batch
	session *sessionIdentity
	decoded *decodedSession // nil for a signed cookie's session
}

// ResolveBatch resolves session cookie values as Resolve does, together:
// one statement on django_session for all of them (none with
// signed_cookies, whose cookie is the session), then one on the user table,
// one on its groups and one on permissions for the users they name (a list
// longer than maxInList takes one statement per maxInList). Rows are matched
// to values by session key and to sessions by user key, never by position.
// A database error fails the values not yet answered when it happened.
// out[i] answers values[i]; queries counts the statements sent.
func (ids *Identities) ResolveBatch(ctx context.Context, values []string) (out []Resolution, queries int) {
	out = make([]Resolution, len(values))
	now := ids.now()
	var pending []verified
	var keys []string
	var keyed []int
	for i, v := range values {
		switch {
		case v == "":
			out[i].Reason = ReasonNoCookie
		case utf8.RuneCountInString(v) < 8:
			// Django: a key shorter than 8 characters is no key at all.
			out[i].Reason = ReasonShortKey
		case ids.signed:
			session, signed, err := ids.sig.loadsAt(v, ids.salt, ids.cfg.CookieAge, now)
			// Valid while now - signed <= SESSION_COOKIE_AGE.
			out[i].Until = signed.Add(ids.cfg.CookieAge).Add(time.Nanosecond)
			if !ids.verifiedOr(&out[i], err) {
				continue
			}
			id := ids.identityOf(session)
			pending = append(pending, verified{i: i, session: &id})
		case !ids.Plausible(v):
			out[i].Reason = ReasonNoRow
		default:
			keys = append(keys, v)
			keyed = append(keyed, i)
		}
	}
	if len(keys) > 0 {
		rows, n, err := ids.sessionRows(ctx, keys, now)
		queries += n
		for _, i := range keyed {
			if err != nil {
				out[i] = Resolution{Reason: ReasonDatabaseError, Err: err}
				continue
			}
			row, ok := rows[values[i]]
			if !ok {
				out[i].Reason = ReasonNoRow
				continue
			}
			out[i].Until = row.until
			decoded, err := ids.loadRow(row.data, now)
			if !ids.verifiedOr(&out[i], err) {
				continue
			}
			pending = append(pending, verified{i: i, session: &decoded.identity, decoded: decoded})
		}
	}
	queries += ids.users(ctx, out, pending)
	return out, queries
}

// loadRow verifies and decodes a django_session row's data. Data seen
// before (a re-check of an unchanged session) is answered from ids.decoded
// without verifying it again: the same bytes verify the same way.
func (ids *Identities) loadRow(data string, now time.Time) (*decodedSession, error) {
	digest := digestOf(data)
	if d, ok := ids.decoded.Get(digest); ok {
		return d, nil
	}
	session, err := ids.sig.loads(data, ids.salt, noMaxAge, now)
	if err != nil && ReasonOf(err) == ReasonBadSignature && ids.rules.legacySessionData {
		session, err = legacyLoads(data, ids.className, ids.cfg.SecretKey)
	}
	if err != nil {
		return nil, err
	}
	d := &decodedSession{identity: ids.identityOf(session)}
	ids.decoded.Add(digest, d)
	return d, nil
}

// identityOf picks from a decoded session what identifies its visitor. A
// backend that names a configured one is kept as one shared string, not as
// the decoder's copy.
func (ids *Identities) identityOf(session map[string]any) sessionIdentity {
	id := sessionIdentity{features: featureStatus(session)}
	var raw any
	if raw, id.hasID = session["_auth_user_id"]; id.hasID {
		id.nullID = raw == nil
		id.intPK, id.intOK = toPK(raw, false)
		id.uuidPK, id.uuidOK = toPK(raw, true)
	}
	if b, ok := session["_auth_user_backend"].(string); ok {
		if ids.backends[b] {
			b = ids.backendNames[b]
		}
		id.backend, id.hasBackend = b, true
	}
	id.hash, _ = session["_auth_user_hash"].(string)
	return id
}

// verifiedOr records in r why a session did not verify, and reports
// whether it did.
func (ids *Identities) verifiedOr(r *Resolution, err error) bool {
	if err == nil {
		return true
	}
	switch reason := ReasonOf(err); {
	case reason == ReasonDatabaseError:
		*r = Resolution{Reason: reason, Err: err}
	default:
		r.Reason = reason
	}
	return false
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

// expiry turns the row's expire_date into an instant (zero if unreadable).
func (ids *Identities) expiry(v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x
	case string:
		return ids.expiryText(x)
	case []byte:
		return ids.expiryText(string(x))
	}
	return time.Time{}
}

// expiryText reads SQLite's text of an expire_date: the wall clock of UTC
// with USE_TZ, of TIME_ZONE without.
func (ids *Identities) expiryText(s string) time.Time {
	loc := time.UTC
	if !ids.cfg.UseTZ {
		loc = ids.cfg.TimeZone
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999", "2006-01-02T15:04:05.999999"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t
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

// users applies django.contrib.auth.get_user to verified sessions, writing
// each answer into out, and returns the statements it sent.
func (ids *Identities) users(ctx context.Context, out []Resolution, pending []verified) int {
	type candidate struct {
		verified
		backend string
		pk      string
	}
	var cands []candidate
	for _, p := range pending {
		hasID, backend, hasBackend := p.session.hasID, p.session.backend, p.session.hasBackend
		switch {
		case !hasID || p.session.nullID || !hasBackend:
			out[p.i].Reason = ReasonAnonymousSession
			if hasID && !hasBackend {
				out[p.i].Reason = ReasonBackend
			}
		case !slices.Contains(ids.cfg.AuthenticationBackends, backend) || !ids.backends[backend]:
			out[p.i].Reason = ReasonBackend
		default:
			cands = append(cands, candidate{verified: p, backend: backend})
			continue
		}
		out[p.i].Subject.FeatureStatus = p.session.features
	}
	if len(cands) == 0 {
		return 0
	}
	fail := func(err error, which []candidate) {
		for _, c := range which {
			out[c.i] = Resolution{Reason: ReasonDatabaseError, Err: err}
		}
	}
	shape, err := ids.userShape(ctx)
	if err != nil {
		fail(err, cands)
		return 0
	}
	var pks []string
	named := cands[:0]
	for _, c := range cands {
		pk, ok := c.session.pk(shape.uuid)
		if !ok {
			out[c.i].Reason = ReasonUserNotFound
			out[c.i].Subject.FeatureStatus = c.session.features
			continue
		}
		c.pk = pk
		named = append(named, c)
		pks = append(pks, pk)
	}
	if len(named) == 0 {
		return 0
	}
	rows, queries, err := ids.userRows(ctx, shape, pks)
	if err != nil {
		fail(err, named)
		return queries
	}
	authed := named[:0]
	accepted := map[string]userRow{}
	for _, c := range named {
		u, found := rows[c.pk]
		h := c.session.hash
		switch {
		case !found:
			out[c.i].Reason = ReasonUserNotFound
		case !u.active && (c.backend == backendModel || c.backend == backendRemote):
			out[c.i].Reason = ReasonUserInactive
		case h == "":
			// Django flushes the session on a missing or wrong auth hash:
			// its data, feature-flipper's entries included, is gone.
			out[c.i].Reason = ReasonHashMissing
			continue
		case !ids.authHashMatches(c.decoded, h, u.password):
			out[c.i].Reason = ReasonHashMismatch
			continue
		default:
			authed = append(authed, c)
			accepted[c.pk] = u
			continue
		}
		out[c.i].Subject.FeatureStatus = c.session.features
	}
	if len(authed) == 0 {
		return queries
	}
	subjects, n, err := ids.subjects(ctx, shape, accepted)
	queries += n
	if err != nil {
		fail(err, authed)
		return queries
	}
	for _, c := range authed {
		s := subjects[c.pk]
		s.FeatureStatus = c.session.features
		out[c.i].Subject, out[c.i].Reason = s, ReasonAuthenticated
	}
	return queries
}

// subjects builds the logged-in subjects of users (by primary key): their
// flags, groups and (when a ModelBackend-like backend is configured)
// permissions, in one statement for the groups and one for the permissions.
func (ids *Identities) subjects(ctx context.Context, shape *userShape, users map[string]userRow) (map[string]engine.Subject, int, error) {
	pks := slices.Sorted(maps.Keys(users))
	groups, queries, err := ids.groupsOf(ctx, shape, pks)
	if err != nil {
		return nil, queries, err
	}
	var permPKs []string
	if ids.modelPerm && ids.permsExact {
		for _, pk := range pks {
			if u := users[pk]; u.active && !u.superuser {
				permPKs = append(permPKs, pk)
			}
		}
	}
	perms, n, err := ids.permissionsOf(ctx, shape, permPKs)
	queries += n
	if err != nil {
		return nil, queries, err
	}
	out := make(map[string]engine.Subject, len(pks))
	for _, pk := range pks {
		u := users[pk]
		out[pk] = engine.Subject{UserID: pk, Username: u.username, Authenticated: true, Active: u.active, Staff: u.staff,
			Superuser: u.superuser, Groups: groups[pk], Permissions: perms[pk]}
	}
	return out, queries, nil
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

// userRow reads the row of user pk.
func (ids *Identities) userRow(ctx context.Context, shape *userShape, pk string) (userRow, bool, error) {
	rows, _, err := ids.userRows(ctx, shape, []string{pk})
	u, found := rows[pk]
	return u, found, err
}

// subject builds the logged-in subject of user pk, whose row is u.
func (ids *Identities) subject(ctx context.Context, shape *userShape, pk string, u userRow) (engine.Subject, error) {
	subjects, _, err := ids.subjects(ctx, shape, map[string]userRow{pk: u})
	if err != nil {
		return engine.Anonymous, err
	}
	return subjects[pk], nil
}

// authHashMatches reports whether the session's auth hash h matches the
// user's password hash, as Django's get_user checks it; d remembers the
// digest of the password hash it last matched (nil: nothing remembered),
// so that an unchanged one costs a SHA-256 rather than an HMAC a hash
// algorithm and key.
func (ids *Identities) authHashMatches(d *decodedSession, h, password string) bool {
	if d == nil {
		return ids.hashMatches(h, password)
	}
	digest := digestOf(password)
	d.mu.Lock()
	known := d.hasMatched && d.matched == digest
	d.mu.Unlock()
	if known {
		return true
	}
	if !ids.hashMatches(h, password) {
		return false
	}
	d.mu.Lock()
	d.matched, d.hasMatched = digest, true
	d.mu.Unlock()
	return true
}

// pk is the session's user id as the primary key's to_python makes it,
// for a UUID key or an integer one.
func (id *sessionIdentity) pk(uuid bool) (string, bool) {
	if uuid {
		return id.uuidPK, id.uuidOK
	}
	return id.intPK, id.intOK
}

// digestOf is the SHA-256 digest of s, read in place: Sum256 only reads
// its input, so s is not copied into a new []byte first (session data is
// hundreds of bytes, and every re-check hashes it).
func digestOf(s string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(s), len(s)))
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
	if sign == "" && digits == s && (len(s) == 1 || s[0] != '0') {
		return s, true // already as Python prints it
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
