package djangodb

import (
	"strconv"
	"testing"
	"time"
)

// TestLoginIsRecognised: a session Login writes is the one Django's
// login() writes, so flagproxy recognises its user; and MissingPermissions
// finds permissions by app label and codename.
func TestLoginIsRecognised(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		id := strconv.FormatInt(insertUser(t, db, "alice"), 10)
		h, err := Open(db.Target)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		rw := db.W
		cfg := SessionConfig{SecretKey: "demo-key", UseTZ: true}
		key, err := Login(t.Context(), rw, db.Dialect, cfg, id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := NewIdentities(h, db.Dialect, cfg)
		if err != nil {
			t.Fatal(err)
		}
		s, reason, _, err := ids.Resolve(t.Context(), key)
		if err != nil || s.UserID != id || !s.Authenticated {
			t.Fatalf("resolve: %+v %v %v", s, reason, err)
		}
		if _, err := Login(t.Context(), rw, db.Dialect, cfg, "999999", time.Hour); err == nil {
			t.Error("login of a user that does not exist")
		}
		db.Exec(t, `INSERT INTO django_content_type (app_label, model) VALUES ('flagproxy_django', 'flagproxyflip')`)
		db.Exec(t, `INSERT INTO auth_permission (content_type_id, codename, name) SELECT id, 'can_flip_with_url', 'x' FROM django_content_type`)
		missing, err := MissingPermissions(t.Context(), h, []string{"flagproxy_django.can_flip_with_url", "featureflipper.can_flip_with_url"})
		if err != nil || len(missing) != 1 || missing[0] != "featureflipper.can_flip_with_url" {
			t.Errorf("missing %v, %v", missing, err)
		}
	})
}
