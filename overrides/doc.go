// Package overrides turns a request into engine.Overrides: django-feature-
// flipper's URL and session overrides, for visitors allowed to flip.
//
// The query parameters (only the name counts, never the value):
//
//	enable_<name>            on for this request
//	disable_<name>           off for this request (flagproxy's extension)
//	session_enable_<name>    on for the rest of the session
//	session_disable_<name>   off for the rest of the session (extension)
//	session_clear_features   forget every stored override (applied first)
//
// A name is what feature-flipper's ^enable_(\w+)$ captures with Python 2's
// ASCII \w: letters, digits and underscores (one trailing newline, which
// Python's $ tolerates, is dropped). Other names are ignored.
//
// Who may flip: a visitor whose Django user has the flip permission
// (featureflipper.can_flip_with_url by default, directly or through a
// group; active superusers have every permission), or everyone when
// FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING is on. This is stricter than
// feature-flipper's 2010 code, which let anyone use enable_<name>
// (DESIGN.md §3). Stored overrides live in flagproxy's own cookie (see
// Overrider) and are re-checked on every request.
//
// Precedence, lowest first: the flag's own rules (including waffle's
// testing mode and WAFFLE_OVERRIDE), the feature_status_<name> entries of
// the visitor's Django session, flagproxy's stored session overrides, then
// this request's URL overrides; within one layer, disable beats enable.
package overrides
