package djangodb

import (
	"sync"
	"time"
)

// badSignatureRun is how many sessions in a row must fail their signature
// check before keyWatch calls it a wrong SECRET_KEY: one forged or stale
// row is not, a run of real sessions rows that all fail is.
const badSignatureRun = 5

// badSignatureLogEvery bounds how often the wrong-key warning is logged.
const badSignatureLogEvery = 5 * time.Minute

// wrongKeyMessage is the warning keyWatch asks for.
const wrongKeyMessage = "session after session fails its signature check: SECRET_KEY probably differs from the site's, " +
	"so every visitor is anonymous; check --secret-key (FLAGPROXY_SECRET_KEY) or SECRET_KEY and SECRET_KEY_FALLBACKS " +
	"in the --django-settings file (write it again with manage.py flagproxy_settings), and run manage.py flagproxy_doctor"

// keyWatch notices sessions failing their signature check one after
// another. A session whose data verified (whatever happened next) ends a
// run; answers that say nothing about the key (no row, no cookie, a
// database error) neither extend nor end it. Row values come from Django's
// own table, so a run of bad signatures there is the key, not a visitor.
type keyWatch struct {
	mu      sync.Mutex
	run     int
	lastLog time.Time
}

// observe records one session's answer at now and reports whether to log
// the wrong-key warning now, with the length of the run.
func (w *keyWatch) observe(reason Reason, now time.Time) (run int, warn bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case reason == ReasonBadSignature:
		w.run++
	case signatureVerified(reason):
		w.run = 0
		return 0, false
	default:
		return w.run, false
	}
	if w.run <= badSignatureRun || (!w.lastLog.IsZero() && now.Sub(w.lastLog) < badSignatureLogEvery) {
		return w.run, false
	}
	w.lastLog = now
	return w.run, true
}

// signatureVerified reports whether a session with this answer passed its
// signature check.
func signatureVerified(r Reason) bool {
	switch r {
	case ReasonAuthenticated, ReasonAnonymousSession, ReasonNoAuth, ReasonBackend, ReasonUserNotFound,
		ReasonUserInactive, ReasonHashMissing, ReasonHashMismatch, ReasonExpired:
		return true
	}
	return false
}
