package djangodb

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flagproxy/flagproxy/engine"
)

// insertContentType adds the django_content_type row Django's
// post_migrate signal creates for a model, and returns its id.
func insertContentType(t testing.TB, db *testDB, app, model string) int64 {
	t.Helper()
	var id int64
	if err := db.W.Get(&id, db.W.Rebind(`INSERT INTO django_content_type (app_label, model) VALUES (?, ?) RETURNING id`), app, model); err != nil {
		t.Fatalf("%s: insert content type: %v", db.Name, err)
	}
	return id
}

// adminLog is one django_admin_log row as Django's LogEntry writes it.
type adminLog struct {
	at          time.Time
	user        int64
	contentType int64
	objectID    string
	repr        string
	action      engine.AdminAction
	message     string
}

func insertAdminLog(t testing.TB, db *testDB, e adminLog) int64 {
	t.Helper()
	var id int64
	q := `INSERT INTO django_admin_log (action_time, object_id, object_repr, change_message, content_type_id, user_id, action_flag)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`
	if err := db.W.Get(&id, db.W.Rebind(q), e.at, e.objectID, e.repr, e.message, e.contentType, e.user, int(e.action)); err != nil {
		t.Fatalf("%s: insert admin log: %v", db.Name, err)
	}
	return id
}

// TestLoaderAdminLog is the contract of the admin log reader on both
// databases, with the schema Django's migrations make: the first load
// reads no entries; a later one reads exactly the entries added since,
// about the flag models only, each resolved to its row's current name
// (or, for a deleted row, to the name in object_repr) and its user's
// username; entries that name no row are left out; and at most
// maxAdminEntries, the newest, are read per load.
func TestLoaderAdminLog(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		flagCT := insertContentType(t, db, "waffle", "flag")
		switchCT := insertContentType(t, db, "waffle", "switch")
		stateCT := insertContentType(t, db, "flags", "flagstate")
		userCT := insertContentType(t, db, "auth", "user")
		featureCT := insertContentType(t, db, "featureflipper", "feature")
		modelCT := insertContentType(t, db, "flags", "featureflag")
		alice, bob := insertUser(t, db, "alice"), insertUser(t, db, "bob")
		flag := insertWaffleFlag(t, db, "checkout", nil)
		state := insertFlagState(t, db, 0, engine.FlagState{Name: "beta", Condition: "boolean", Value: "true"})
		var feature, model int64
		if err := db.W.Get(&feature, db.W.Rebind(`INSERT INTO featureflipper_feature (name, description, enabled) VALUES ('search', '', ?) RETURNING id`), true); err != nil {
			t.Fatal(err)
		}
		if err := db.W.Get(&model, db.W.Rebind(`INSERT INTO flags_featureflag ("key", enabled, rollout_percent) VALUES ('pricing', ?, 5) RETURNING id`), true); err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 3, 1, 12, 30, 15, 123456000, time.UTC)
		insertAdminLog(t, db, adminLog{at, alice, flagCT, itoa(flag), "checkout", engine.AdminChange, "before the first load"})

		l := db.Loader(t, Config{})
		if d, _ := loadData(t, l); d.AdminLog != nil {
			t.Fatalf("first load read admin log entries %+v; the log before start is not a change", d.AdminLog)
		}

		e1 := insertAdminLog(t, db, adminLog{at, alice, flagCT, itoa(flag), "checkout", engine.AdminChange, `[{"changed": {"fields": ["Everyone"]}}]`})
		insertAdminLog(t, db, adminLog{at, bob, userCT, itoa(alice), "alice", engine.AdminChange, "not a flag"})
		e3 := insertAdminLog(t, db, adminLog{at, bob, switchCT, "999", "maintenance", engine.AdminDeletion, ""})
		e4 := insertAdminLog(t, db, adminLog{at, bob, stateCT, itoa(state), "beta is enabled when boolean is true", engine.AdminAddition, ""})
		e5 := insertAdminLog(t, db, adminLog{at, alice, featureCT, itoa(feature), "search", engine.AdminChange, ""})
		e6 := insertAdminLog(t, db, adminLog{at, alice, modelCT, itoa(model), "pricing", engine.AdminChange, ""})
		insertAdminLog(t, db, adminLog{at, bob, switchCT, "998", "", engine.AdminDeletion, "no name at all"})
		insertAdminLog(t, db, adminLog{at, bob, stateCT, "997", "x is enabled when y is enabled when z", engine.AdminDeletion, "ambiguous"})
		// The flag is renamed after alice's entry: the entry names it by its current name.
		db.Exec(t, `UPDATE waffle_flag SET name = 'checkout2' WHERE id = ?`, flag)

		d, _ := loadData(t, l)
		want := []engine.AdminEntry{
			{ID: e6, Time: at, UserID: itoa(alice), Username: "alice", Kind: engine.KindFlag, Source: engine.SourceFeatureFlag, Name: "pricing", Action: engine.AdminChange},
			{ID: e5, Time: at, UserID: itoa(alice), Username: "alice", Kind: engine.KindFlag, Source: engine.SourceFeatureFlipper, Name: "search", Action: engine.AdminChange},
			{ID: e4, Time: at, UserID: itoa(bob), Username: "bob", Kind: engine.KindFlag, Source: engine.SourceDjangoFlags, Name: "beta", Action: engine.AdminAddition},
			{ID: e3, Time: at, UserID: itoa(bob), Username: "bob", Kind: engine.KindSwitch, Source: engine.SourceWaffle, Name: "maintenance", Action: engine.AdminDeletion},
			{ID: e1, Time: at, UserID: itoa(alice), Username: "alice", Kind: engine.KindFlag, Source: engine.SourceWaffle, Name: "checkout2",
				Action: engine.AdminChange, Message: `[{"changed": {"fields": ["Everyone"]}}]`},
		}
		if diff := cmp.Diff(want, d.AdminLog, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
			t.Errorf("second load (-want +got):\n%s", diff)
		}
		if d, _ := loadData(t, l); d.AdminLog != nil {
			t.Errorf("a load with no new entries read %+v", d.AdminLog)
		}

		var last int64
		for range maxAdminEntries + 5 {
			last = insertAdminLog(t, db, adminLog{at, alice, flagCT, itoa(flag), "checkout2", engine.AdminChange, ""})
		}
		d, _ = loadData(t, l)
		if len(d.AdminLog) != maxAdminEntries || d.AdminLog[0].ID != last {
			t.Errorf("a burst of %d entries: read %d, the first %d; want the newest %d from %d", maxAdminEntries+5, len(d.AdminLog), firstID(d.AdminLog), maxAdminEntries, last)
		}
		if d, _ := loadData(t, l); d.AdminLog != nil {
			t.Errorf("the entries a burst left out were read later: %d", len(d.AdminLog))
		}
	})
}

// TestLoaderAdminLogUserModel checks the usernames of a custom user model
// whose USERNAME_FIELD is missing: entries are still read, without one.
func TestLoaderAdminLogUserModel(t *testing.T) {
	db := newSQLite(t, true)
	flagCT := insertContentType(t, db, "waffle", "flag")
	alice := insertUser(t, db, "alice")
	flag := insertWaffleFlag(t, db, "checkout", nil)
	l := db.Loader(t, Config{UsernameField: "email_address"})
	loadData(t, l)
	id := insertAdminLog(t, db, adminLog{time.Now(), alice, flagCT, itoa(flag), "checkout", engine.AdminChange, ""})
	d, _ := loadData(t, l)
	if len(d.AdminLog) != 1 || d.AdminLog[0].ID != id || d.AdminLog[0].Username != "" || d.AdminLog[0].UserID != itoa(alice) {
		t.Errorf("AdminLog = %+v; want entry %d by user %d without a username", d.AdminLog, id, alice)
	}
}

// TestLoaderAdminLogFailure checks that an unreadable admin log never
// fails a load: its entries are left out and logged, and the next good
// read starts at the end of the log rather than reading old entries.
func TestLoaderAdminLogFailure(t *testing.T) {
	db := newSQLite(t, true)
	flagCT := insertContentType(t, db, "waffle", "flag")
	alice := insertUser(t, db, "alice")
	flag := insertWaffleFlag(t, db, "checkout", nil)
	l := db.Loader(t, Config{})
	loadData(t, l)
	insertAdminLog(t, db, adminLog{time.Now(), alice, flagCT, itoa(flag), "checkout", engine.AdminChange, ""})
	// A user key Django could not have written makes the read fail.
	db.Exec(t, `UPDATE django_admin_log SET user_id = 1.5`)
	d, _ := loadData(t, l)
	if d.AdminLog != nil || len(d.WaffleFlags) != 1 {
		t.Fatalf("load with a broken admin log: entries %+v, flags %+v", d.AdminLog, d.WaffleFlags)
	}
	db.Exec(t, `UPDATE django_admin_log SET user_id = ?`, alice)
	if d, _ := loadData(t, l); d.AdminLog != nil {
		t.Errorf("after a failed read, the next load read old entries: %+v", d.AdminLog)
	}
	id := insertAdminLog(t, db, adminLog{time.Now(), alice, flagCT, itoa(flag), "checkout", engine.AdminChange, ""})
	if d, _ := loadData(t, l); len(d.AdminLog) != 1 || d.AdminLog[0].ID != id {
		t.Errorf("AdminLog = %+v; want entry %d", d.AdminLog, id)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func firstID(es []engine.AdminEntry) int64 {
	if len(es) == 0 {
		return 0
	}
	return es[0].ID
}
