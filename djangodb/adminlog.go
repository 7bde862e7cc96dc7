package djangodb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/flagproxy/flagproxy/engine"
)

// Django's admin log (django.contrib.admin's LogEntry) says who changed a
// row through the admin and when. Each load reads, in its own transaction,
// the entries about flag rows that were added since the previous load
// (the ids after the last one seen, the newest maxAdminEntries of them),
// resolves each to the name of the row it concerns, and hands them on in
// engine.Data.AdminLog; engine.Attribute matches them to changes. The
// first load only notes where the log ends: what came before is not a
// change. Reading the log never fails a load: on an error the entries are
// left out (their changes show as made by an unknown author) and the next
// load starts again from the end of the log.

const (
	adminLogTable    = "django_admin_log"
	contentTypeTable = "django_content_type"
	// maxAdminEntries bounds the entries one load reads; older ones in the
	// same interval are skipped.
	maxAdminEntries = 200
	// flagStateRepr is what str() of a django-flags FlagState puts after
	// its name.
	flagStateRepr = " is enabled when "
)

// adminModel is a flag model whose admin log entries are read.
type adminModel struct {
	app, model string // django_content_type.app_label and .model
	table      string
	nameCol    string
	kind       engine.Kind
	source     engine.Source
}

// adminModels lists the flag models of the sources d holds.
func (l *Loader) adminModels(d *engine.Data) []adminModel {
	split := func(label string) (string, string) {
		app, model, _ := strings.Cut(label, ".")
		return app, strings.ToLower(model)
	}
	var out []adminModel
	has := func(s engine.Source) bool { return slices.Contains(d.Sources, s) }
	if has(engine.SourceWaffle) {
		for _, m := range []struct {
			label, table string
			kind         engine.Kind
		}{{l.cfg.WaffleFlagModel, l.t.flag, engine.KindFlag}, {l.cfg.WaffleSwitchModel, l.t.switches, engine.KindSwitch},
			{l.cfg.WaffleSampleModel, l.t.samples, engine.KindSample}} {
			app, model := split(m.label)
			out = append(out, adminModel{app, model, m.table, "name", m.kind, engine.SourceWaffle})
		}
	}
	if has(engine.SourceFeatureFlipper) {
		out = append(out, adminModel{"featureflipper", "feature", "featureflipper_feature", "name", engine.KindFlag, engine.SourceFeatureFlipper})
	}
	if has(engine.SourceFeatureFlag) {
		out = append(out, adminModel{l.cfg.FeatureFlagApp, "featureflag", l.t.model, "key", engine.KindFlag, engine.SourceFeatureFlag})
	}
	if has(engine.SourceDjangoFlags) {
		out = append(out, adminModel{"flags", "flagstate", flagStateTable, "name", engine.KindFlag, engine.SourceDjangoFlags})
	}
	return out
}

// adminLogRow is one django_admin_log row, with its user's username.
type adminLogRow struct {
	ID          int64          `db:"id"`
	ActionTime  when           `db:"action_time"`
	UserID      userKey        `db:"user_id"`
	Username    sql.NullString `db:"username"`
	ContentType int64          `db:"content_type_id"`
	ObjectID    sql.NullString `db:"object_id"`
	ObjectRepr  sql.NullString `db:"object_repr"`
	Action      int64          `db:"action_flag"`
	Message     sql.NullString `db:"change_message"`
}

// readAdminLog sets d.AdminLog to the new entries about d's flag rows and
// advances the loader's place in the log. It logs, and otherwise ignores,
// a failure.
func (l *Loader) readAdminLog(ctx context.Context, t tx, tables map[string]struct{}, d *engine.Data) {
	_, hasLog := tables[adminLogTable]
	_, hasTypes := tables[contentTypeTable]
	if !hasLog || !hasTypes {
		return
	}
	l.mu.Lock()
	after, started := l.adminSeen, l.adminStarted
	l.mu.Unlock()
	last, entries, err := l.adminEntries(ctx, t, tables, d, after, started)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.adminStarted = false
		if msg := err.Error(); msg != l.adminErr {
			l.adminErr = msg
			l.log.Warn("could not read Django's admin log; the changes of this load are attributed to nobody", "error", err)
		}
		return
	}
	l.adminSeen, l.adminStarted, l.adminErr = last, true, ""
	d.AdminLog = entries
}

// adminEntries returns the last id of the log and the entries about d's
// flag rows after id after (none the first time).
func (l *Loader) adminEntries(ctx context.Context, t tx, tables map[string]struct{}, d *engine.Data, after int64, started bool) (int64, []engine.AdminEntry, error) {
	var last []int64
	if err := t.SelectContext(ctx, &last, `SELECT COALESCE(MAX(id), 0) FROM `+adminLogTable); err != nil {
		return 0, nil, readErr(adminLogTable, err)
	}
	if !started || len(last) == 0 || last[0] <= after {
		return firstOr(last), nil, nil
	}
	models, err := l.contentTypes(ctx, t, l.adminModels(d))
	if err != nil || len(models) == 0 {
		return last[0], nil, err
	}
	rows, err := l.adminRows(ctx, t, tables, models, after, last[0])
	if err != nil {
		return 0, nil, err
	}
	names, err := l.currentNames(ctx, t, models, rows)
	if err != nil {
		return 0, nil, err
	}
	var out []engine.AdminEntry
	for _, r := range rows {
		m := models[r.ContentType]
		name, ok := names[objectRef{r.ContentType, r.ObjectID.String}]
		if !ok {
			name, ok = nameFromRepr(m, r.ObjectRepr.String)
		}
		if !ok {
			continue
		}
		out = append(out, engine.AdminEntry{ID: r.ID, Time: r.ActionTime.Time, UserID: string(r.UserID), Username: r.Username.String,
			Kind: m.kind, Source: m.source, Name: name, Action: engine.AdminAction(r.Action), Message: r.Message.String})
	}
	return last[0], out, nil
}

func firstOr(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[0]
}

// contentTypes returns the models by their django_content_type id.
func (l *Loader) contentTypes(ctx context.Context, t tx, models []adminModel) (map[int64]adminModel, error) {
	var rows []struct {
		ID    int64  `db:"id"`
		App   string `db:"app_label"`
		Model string `db:"model"`
	}
	if err := t.SelectContext(ctx, &rows, `SELECT id, app_label, model FROM `+contentTypeTable); err != nil {
		return nil, readErr(contentTypeTable, err)
	}
	out := make(map[int64]adminModel)
	for _, r := range rows {
		for _, m := range models {
			if r.App == m.app && r.Model == m.model {
				out[r.ID] = m
			}
		}
	}
	return out, nil
}

// adminRows reads the newest maxAdminEntries entries in (after, last]
// about models, with their users' usernames.
func (l *Loader) adminRows(ctx context.Context, t tx, tables map[string]struct{}, models map[int64]adminModel, after, last int64) ([]adminLogRow, error) {
	ids := make([]int64, 0, len(models))
	for id := range models {
		ids = append(ids, id)
	}
	username, join, err := l.usernameJoin(ctx, t, tables)
	if err != nil {
		return nil, err
	}
	q := `SELECT l.id, l.action_time, l.user_id, ` + username + ` AS username, l.content_type_id, l.object_id, l.object_repr,
		l.action_flag, l.change_message FROM ` + adminLogTable + ` l ` + join + `
		WHERE l.id > ? AND l.id <= ? AND l.content_type_id IN (?) ORDER BY l.id DESC LIMIT ` + strconv.Itoa(maxAdminEntries)
	query, args, err := sqlx.In(q, after, last, ids)
	if err != nil {
		return nil, err
	}
	var rows []adminLogRow
	if err := t.SelectContext(ctx, &rows, l.db.Rebind(query), args...); err != nil {
		return nil, readErr(adminLogTable, err)
	}
	return rows, nil
}

// usernameJoin returns the select expression of the entry's username and
// the join it needs: the user table's USERNAME_FIELD, or an empty string when that
// table or column is missing.
func (l *Loader) usernameJoin(ctx context.Context, t tx, tables map[string]struct{}) (string, string, error) {
	users, _ := userTablesFor(l.cfg.AuthUserModel)
	if _, ok := tables[users.user]; !ok {
		return "''", "", nil
	}
	cols, err := l.columns(ctx, t, users.user)
	if err != nil {
		return "", "", fmt.Errorf("columns of %s: %w", users.user, err)
	}
	for _, c := range cols {
		if c == l.cfg.UsernameField {
			return "u." + quote(c), `LEFT JOIN ` + quote(users.user) + ` u ON u.id = l.user_id`, nil
		}
	}
	return "''", "", nil
}

// objectRef is a row named by an admin log entry.
type objectRef struct {
	contentType int64
	objectID    string
}

// currentNames reads, in the load's transaction, the names of the rows
// the entries concern that still exist.
func (l *Loader) currentNames(ctx context.Context, t tx, models map[int64]adminModel, rows []adminLogRow) (map[objectRef]string, error) {
	byType := make(map[int64][]int64)
	for _, r := range rows {
		if id, err := strconv.ParseInt(r.ObjectID.String, 10, 64); err == nil {
			byType[r.ContentType] = append(byType[r.ContentType], id)
		}
	}
	out := make(map[objectRef]string)
	for ct, ids := range byType {
		m := models[ct]
		query, args, err := sqlx.In(`SELECT id, `+quote(m.nameCol)+` AS name FROM `+quote(m.table)+` WHERE id IN (?)`, ids)
		if err != nil {
			return nil, err
		}
		var got []struct {
			ID   int64 `db:"id"`
			Name text  `db:"name"`
		}
		if err := t.SelectContext(ctx, &got, l.db.Rebind(query), args...); err != nil {
			return nil, readErr(m.table, err)
		}
		for _, g := range got {
			if g.Name.Invalid == "" {
				out[objectRef{ct, strconv.FormatInt(g.ID, 10)}] = g.Name.String
			}
		}
	}
	return out, nil
}

// nameFromRepr returns the name of a row that no longer exists from the
// entry's object_repr, which is str() of the row: its name for waffle's
// models, feature-flipper's Feature and the FeatureFlag model, and
// "<name> is enabled when …" for a django-flags FlagState (ambiguous, so
// refused, when that text occurs twice).
func nameFromRepr(m adminModel, repr string) (string, bool) {
	if m.source != engine.SourceDjangoFlags {
		return repr, repr != ""
	}
	if strings.Count(repr, flagStateRepr) != 1 {
		return "", false
	}
	name, _, _ := strings.Cut(repr, flagStateRepr)
	return name, name != ""
}
