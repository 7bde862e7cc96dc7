package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/flagproxy/flagproxy/djangodb"
	"github.com/flagproxy/flagproxy/engine"
)

// DjangoSettings holds the Django settings flagproxy honours, read from the
// --django-settings JSON file. Fields keep Django's (and each library's)
// defaults for keys the file does not have.
type DjangoSettings struct {
	SecretKey              string
	SecretKeyFallbacks     []string
	SessionEngine          string
	SessionCookieName      string
	SessionCookieAge       int64
	AuthUserModel          string
	AuthenticationBackends []string
	LanguageCode           string
	Languages              [][2]string
	LanguageCookieName     string
	UseI18N                bool
	// Middleware is MIDDLEWARE; LocaleMiddleware (key
	// FLAGPROXY_LOCALE_MIDDLEWARE, written by manage.py flagproxy_settings)
	// reports that it holds django.middleware.locale.LocaleMiddleware or a
	// subclass. Without that key, only the class itself is recognised.
	Middleware       []string
	LocaleMiddleware bool
	localeMiddleware bool // the key was present
	// AvailableLanguages (FLAGPROXY_AVAILABLE_LANGUAGES) are the codes of
	// LANGUAGES that have a translation catalog; nil means all of them.
	AvailableLanguages []string
	// I18NPatterns and PrefixDefaultLanguage (FLAGPROXY_I18N_PATTERNS,
	// FLAGPROXY_PREFIX_DEFAULT_LANGUAGE) describe the root URLconf's use of
	// i18n_patterns.
	I18NPatterns          bool
	PrefixDefaultLanguage bool
	AnonymousURLFlipping  bool // FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING
	UseTZ                 bool
	TimeZone              string
	DefaultHashing        string // DEFAULT_HASHING_ALGORITHM (3.1/3.2)
	// DjangoVersion (key DJANGO_VERSION: django.get_version()) selects the
	// version's session rules.
	DjangoVersion string
	// SessionStoreQualname (key SESSION_STORE_QUALNAME) is the
	// __qualname__ of a custom SESSION_ENGINE's SessionStore class.
	SessionStoreQualname string
	useTZSet             bool

	Waffle engine.WaffleSettings
	// SigningKey (FLAGPROXY_SIGNING_KEY, the setting flagproxy_django
	// verifies with; its first key when a list) signs the flags header.
	SigningKey string

	// DjangoFlags holds django-flags' FLAGS (or FLAGS_ERROR), FLAG_SOURCES
	// and DATA_UPLOAD_MAX_NUMBER_FIELDS as the settings file carries them;
	// USE_TZ, TIME_ZONE and DJANGO_VERSION are filled in by Config.
	DjangoFlags engine.DjangoFlagsSettings
	// UsernameField (FLAGPROXY_USERNAME_FIELD) is the user model's
	// USERNAME_FIELD, which django-flags' user condition compares.
	UsernameField string

	WaffleFlagModel string
	// WaffleFlagTable (FLAGPROXY_WAFFLE_FLAG_TABLE) is the flag model's
	// Meta.db_table, when it differs from <app_label>_<modelname>.
	WaffleFlagTable   string
	WaffleSwitchModel string
	WaffleSampleModel string
}

// defaultDjangoSettings returns Django 3.2's and the flag libraries' defaults.
func defaultDjangoSettings() DjangoSettings {
	return DjangoSettings{
		SessionEngine:          "django.contrib.sessions.backends.db",
		SessionCookieName:      "sessionid",
		SessionCookieAge:       1209600,
		AuthUserModel:          "auth.User",
		AuthenticationBackends: []string{"django.contrib.auth.backends.ModelBackend"},
		LanguageCode:           "en-us",
		LanguageCookieName:     "django_language",
		UseI18N:                true,
		Languages:              djangoLanguages(),
		PrefixDefaultLanguage:  true,
		Waffle:                 engine.DefaultWaffleSettings(),
		WaffleFlagModel:        "waffle.Flag",
		WaffleSwitchModel:      "waffle.Switch",
		WaffleSampleModel:      "waffle.Sample",
		TimeZone:               "America/Chicago",
		DjangoFlags:            engine.DefaultDjangoFlagsSettings(),
		UsernameField:          "username",
	}
}

// settingKind is the JSON type a known setting must have.
type settingKind int

const (
	kString settingKind = iota
	kStrings
	kBool
	kInt
	kPairs
	kKeys // a string, or a non-empty list of strings (newest first)
	kAny  // known and accepted, not used by flagproxy
	kFlags
	kError
	kLimit
)

func (k settingKind) String() string {
	return [...]string{"a string", "a list of strings", "true or false", "an integer", "a list of [code, name] pairs",
		"a non-empty string or a non-empty list of them", "any value",
		`an object mapping each flag name to a list of {"condition", "value", "required"} objects`,
		`an object {"type": string, "message": string}`, "an integer or null"}[k]
}

// knownSettings maps each setting flagproxy knows to its type and the field
// it fills. Keys that do not change a decision are still type-checked.
var knownSettings = map[string]struct {
	kind settingKind
	set  func(s *DjangoSettings, v any)
}{
	"SECRET_KEY":                             {kString, func(s *DjangoSettings, v any) { s.SecretKey = v.(string) }},
	"SECRET_KEY_FALLBACKS":                   {kStrings, func(s *DjangoSettings, v any) { s.SecretKeyFallbacks = v.([]string) }},
	"SESSION_ENGINE":                         {kString, func(s *DjangoSettings, v any) { s.SessionEngine = v.(string) }},
	"SESSION_COOKIE_NAME":                    {kString, func(s *DjangoSettings, v any) { s.SessionCookieName = v.(string) }},
	"SESSION_COOKIE_AGE":                     {kInt, func(s *DjangoSettings, v any) { s.SessionCookieAge = v.(int64) }},
	"AUTH_USER_MODEL":                        {kString, func(s *DjangoSettings, v any) { s.AuthUserModel = v.(string) }},
	"AUTHENTICATION_BACKENDS":                {kStrings, func(s *DjangoSettings, v any) { s.AuthenticationBackends = v.([]string) }},
	"LANGUAGE_CODE":                          {kString, func(s *DjangoSettings, v any) { s.LanguageCode = v.(string) }},
	"LANGUAGES":                              {kPairs, func(s *DjangoSettings, v any) { s.Languages = v.([][2]string) }},
	"LANGUAGE_COOKIE_NAME":                   {kString, func(s *DjangoSettings, v any) { s.LanguageCookieName = v.(string) }},
	"USE_I18N":                               {kBool, func(s *DjangoSettings, v any) { s.UseI18N = v.(bool) }},
	"MIDDLEWARE":                             {kStrings, func(s *DjangoSettings, v any) { s.Middleware = v.([]string) }},
	"FLAGPROXY_LOCALE_MIDDLEWARE":            {kBool, func(s *DjangoSettings, v any) { s.LocaleMiddleware, s.localeMiddleware = v.(bool), true }},
	"FLAGPROXY_AVAILABLE_LANGUAGES":          {kStrings, func(s *DjangoSettings, v any) { s.AvailableLanguages = v.([]string) }},
	"FLAGPROXY_I18N_PATTERNS":                {kBool, func(s *DjangoSettings, v any) { s.I18NPatterns = v.(bool) }},
	"FLAGPROXY_PREFIX_DEFAULT_LANGUAGE":      {kBool, func(s *DjangoSettings, v any) { s.PrefixDefaultLanguage = v.(bool) }},
	"FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING": {kBool, func(s *DjangoSettings, v any) { s.AnonymousURLFlipping = v.(bool) }},
	"USE_TZ":                                 {kBool, func(s *DjangoSettings, v any) { s.UseTZ, s.useTZSet = v.(bool), true }},
	"TIME_ZONE":                              {kString, func(s *DjangoSettings, v any) { s.TimeZone = v.(string) }},
	"DEFAULT_HASHING_ALGORITHM":              {kString, func(s *DjangoSettings, v any) { s.DefaultHashing = v.(string) }},
	"DJANGO_VERSION":                         {kString, func(s *DjangoSettings, v any) { s.DjangoVersion = v.(string) }},
	"SESSION_STORE_QUALNAME":                 {kString, func(s *DjangoSettings, v any) { s.SessionStoreQualname = v.(string) }},
	"WAFFLE_FLAG_DEFAULT":                    {kBool, func(s *DjangoSettings, v any) { s.Waffle.FlagDefault = v.(bool) }},
	"WAFFLE_SWITCH_DEFAULT":                  {kBool, func(s *DjangoSettings, v any) { s.Waffle.SwitchDefault = v.(bool) }},
	"WAFFLE_SAMPLE_DEFAULT":                  {kBool, func(s *DjangoSettings, v any) { s.Waffle.SampleDefault = v.(bool) }},
	"WAFFLE_OVERRIDE":                        {kBool, func(s *DjangoSettings, v any) { s.Waffle.Override = v.(bool) }},
	"WAFFLE_COOKIE":                          {kString, func(s *DjangoSettings, v any) { s.Waffle.Cookie = v.(string) }},
	"WAFFLE_TEST_COOKIE":                     {kString, func(s *DjangoSettings, v any) { s.Waffle.TestCookie = v.(string) }},
	"WAFFLE_SECURE":                          {kBool, func(s *DjangoSettings, v any) { s.Waffle.Secure = v.(bool) }},
	"WAFFLE_MAX_AGE":                         {kInt, func(s *DjangoSettings, v any) { s.Waffle.MaxAge = int(v.(int64)) }},
	"WAFFLE_FLAG_MODEL":                      {kString, func(s *DjangoSettings, v any) { s.WaffleFlagModel = v.(string) }},
	"FLAGPROXY_SIGNING_KEY":                  {kKeys, func(s *DjangoSettings, v any) { s.SigningKey = v.([]string)[0] }},
	"FLAGPROXY_WAFFLE_FLAG_TABLE":            {kString, func(s *DjangoSettings, v any) { s.WaffleFlagTable = v.(string) }},
	"WAFFLE_SWITCH_MODEL":                    {kString, func(s *DjangoSettings, v any) { s.WaffleSwitchModel = v.(string) }},
	"WAFFLE_SAMPLE_MODEL":                    {kString, func(s *DjangoSettings, v any) { s.WaffleSampleModel = v.(string) }},
	"FLAGS":                                  {kFlags, func(s *DjangoSettings, v any) { s.DjangoFlags.Flags = v.(map[string][]engine.SettingCondition) }},
	"FLAGS_ERROR":                            {kError, func(s *DjangoSettings, v any) { s.DjangoFlags.FlagsError = v.(*engine.PyError) }},
	"FLAG_SOURCES":                           {kStrings, func(s *DjangoSettings, v any) { s.DjangoFlags.FlagSources = v.([]string) }},
	"DATA_UPLOAD_MAX_NUMBER_FIELDS":          {kLimit, func(s *DjangoSettings, v any) { s.DjangoFlags.MaxNumberFields = v.(*int) }},
	"FLAGPROXY_USERNAME_FIELD":               {kString, func(s *DjangoSettings, v any) { s.UsernameField = v.(string) }},
	"WAFFLE_CREATE_MISSING_FLAGS":            {kBool, nil},
	"WAFFLE_CREATE_MISSING_SWITCHES":         {kBool, nil},
	"WAFFLE_CREATE_MISSING_SAMPLES":          {kBool, nil},
	"WAFFLE_LOG_MISSING_FLAGS":               {kAny, nil},
	"WAFFLE_LOG_MISSING_SWITCHES":            {kAny, nil},
	"WAFFLE_LOG_MISSING_SAMPLES":             {kAny, nil},
	"WAFFLE_CACHE_NAME":                      {kString, nil},
	"WAFFLE_CACHE_PREFIX":                    {kString, nil},
	"WAFFLE_READ_FROM_WRITE_DB":              {kBool, nil},
	"WAFFLE_ENABLE_ADMIN_PAGES":              {kBool, nil},
}

// loadDjangoSettings reads a --django-settings file. Unknown keys are
// ignored; every known key with a wrong type is reported, all at once.
func loadDjangoSettings(path string) (DjangoSettings, error) {
	s := defaultDjangoSettings()
	f, err := os.Open(path)
	if err != nil {
		return s, fmt.Errorf("--django-settings: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return s, fmt.Errorf("--django-settings %s: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return s, fmt.Errorf("--django-settings %s: not a JSON object: %w", path, err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		known, ok := knownSettings[k]
		if !ok {
			continue
		}
		v, err := decodeSetting(raw[k], known.kind)
		if err != nil {
			errs = append(errs, fmt.Errorf("--django-settings %s: %s must be %s", path, k, known.kind))
			continue
		}
		if known.set != nil {
			known.set(&s, v)
		}
	}
	return s, errors.Join(errs...)
}

func decodeSetting(m json.RawMessage, k settingKind) (any, error) {
	switch k {
	case kFlags, kError, kLimit:
		return decodeTyped(m, k)
	}
	d := json.NewDecoder(bytes.NewReader(m))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	bad := errors.New("wrong type")
	switch k {
	case kAny:
		return v, nil
	case kString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case kBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case kInt:
		if n, ok := v.(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				return i, nil
			}
		}
	case kKeys:
		if s, ok := v.(string); ok {
			v = []any{s}
		}
		list, ok := v.([]any)
		if !ok || len(list) == 0 {
			return nil, bad
		}
		keys := make([]string, 0, len(list))
		for _, x := range list {
			s, ok := x.(string)
			if !ok || s == "" {
				return nil, bad
			}
			keys = append(keys, s)
		}
		return keys, nil
	case kStrings:
		list, ok := v.([]any)
		if !ok {
			return nil, bad
		}
		out := make([]string, 0, len(list))
		for _, x := range list {
			s, ok := x.(string)
			if !ok {
				return nil, bad
			}
			out = append(out, s)
		}
		return out, nil
	case kPairs:
		list, ok := v.([]any)
		if !ok {
			return nil, bad
		}
		out := make([][2]string, 0, len(list))
		for _, x := range list {
			p, ok := x.([]any)
			if !ok || len(p) != 2 {
				return nil, bad
			}
			a, ok1 := p[0].(string)
			b, ok2 := p[1].(string)
			if !ok1 || !ok2 {
				return nil, bad
			}
			out = append(out, [2]string{a, b})
		}
		return out, nil
	}
	return nil, bad
}

// decodeTyped decodes the settings whose JSON form is a structure of its
// own (django-flags' FLAGS, FLAGS_ERROR, the field limit), strictly.
func decodeTyped(m json.RawMessage, k settingKind) (any, error) {
	d := json.NewDecoder(bytes.NewReader(m))
	d.DisallowUnknownFields()
	switch k {
	case kFlags:
		var v map[string][]engine.SettingCondition
		if err := d.Decode(&v); err != nil || v == nil {
			return nil, errors.New("wrong type")
		}
		return v, nil
	case kError:
		var v engine.PyError
		if err := d.Decode(&v); err != nil || v.Type == "" {
			return nil, errors.New("wrong type")
		}
		return &v, nil
	}
	var v *int
	if err := d.Decode(&v); err != nil || (v != nil && *v < 0) {
		return nil, errors.New("wrong type")
	}
	return v, nil
}

// localeMiddlewarePath is Django's LocaleMiddleware.
const localeMiddlewarePath = "django.middleware.locale.LocaleMiddleware"

// Locale returns the derivation of request.LANGUAGE_CODE these settings
// describe for the given Django version ("" for the newest), or nil when
// the site does not install LocaleMiddleware (Django then sets no
// LANGUAGE_CODE, and waffle's languages column never matches).
func (s *DjangoSettings) Locale(djangoVersion string) *engine.Locale {
	on := s.LocaleMiddleware
	if !s.localeMiddleware {
		on = slices.Contains(s.Middleware, localeMiddlewarePath)
	}
	if !on {
		return nil
	}
	codes := make([]string, len(s.Languages))
	for i, l := range s.Languages {
		codes[i] = l[0]
	}
	return engine.NewLocale(engine.LocaleSettings{
		I18N:                  s.UseI18N,
		LanguageCode:          s.LanguageCode,
		Languages:             codes,
		Available:             s.AvailableLanguages,
		CookieName:            s.LanguageCookieName,
		Patterns:              s.I18NPatterns,
		PrefixDefaultLanguage: s.PrefixDefaultLanguage,
		ThreePartPrefixes:     djangoAtLeast(djangoVersion, 4, 1),
	})
}

// djangoAtLeast reports whether version is at least major.minor. An empty
// or unreadable version counts as the newest: the session checks report a
// bad one.
func djangoAtLeast(version string, major, minor int) bool {
	ma, mi, _, err := djangodb.ParseVersion(version)
	return err != nil || ma > major || ma == major && mi >= minor
}

// djangoLanguages returns the default of Django's LANGUAGES setting
// (django.conf.global_settings of 3.2), names left out.
func djangoLanguages() [][2]string {
	codes := strings.Fields(`af ar ar-dz ast az bg be bn br bs ca cs cy da de dsb el en en-au en-gb eo es
		es-ar es-co es-mx es-ni es-ve et eu fa fi fr fy ga gd gl he hi hr hsb hu hy ia id ig io is it ja ka
		kab kk km kn ko ky lb lt lv mk ml mn mr my nb ne nl nn os pa pl pt pt-br ro ru sk sl sq sr sr-latn
		sv sw ta te tg th tk tr tt udm uk ur uz vi zh-hans zh-hant`)
	out := make([][2]string, len(codes))
	for i, c := range codes {
		out[i] = [2]string{c, ""}
	}
	return out
}
