package djangodb

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// userShape reads (once) what the user model's tables look like: whether
// the primary key is a UUID, which of is_active, is_staff and is_superuser
// exist (AbstractBaseUser without PermissionsMixin has fewer), and whether
// the groups and user permissions tables exist.
func (ids *Identities) userShape(ctx context.Context) (*userShape, error) {
	if s := ids.shapeCache.Load(); s != nil {
		return s, nil
	}
	cols, err := tableColumns(ctx, ids.db, ids.dialect, ids.tables.user)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", ids.tables.user, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%w: user table %s does not exist (AUTH_USER_MODEL %s)", ErrSchema, ids.tables.user, ids.cfg.AuthUserModel)
	}
	s := &userShape{
		hasActive: slices.Contains(cols, "is_active"),
		hasStaff:  slices.Contains(cols, "is_staff"),
		hasSuper:  slices.Contains(cols, "is_superuser"),
	}
	s.hasUsername = slices.Contains(cols, ids.cfg.UsernameField)
	if !slices.Contains(cols, "id") || !slices.Contains(cols, "password") {
		return nil, fmt.Errorf("%w: user table %s lacks id or password", ErrSchema, ids.tables.user)
	}
	var typ string
	q := `SELECT type FROM pragma_table_info(?) WHERE name = 'id'`
	arg := ids.tables.user
	if ids.dialect == Postgres {
		q = `SELECT format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'id'`
		arg = quote(arg)
	}
	if err := ids.db.GetContext(ctx, &typ, q, arg); err != nil {
		return nil, fmt.Errorf("type of %s.id: %w", ids.tables.user, err)
	}
	typ = strings.ToLower(typ)
	s.uuid = typ == "uuid" || typ == "char(32)"
	s.int32Key = ids.dialect == Postgres && typ == "integer"
	gcols, err := tableColumns(ctx, ids.db, ids.dialect, ids.tables.groups)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", ids.tables.groups, err)
	}
	s.hasGrp = slices.Contains(gcols, ids.tables.col) && slices.Contains(gcols, "group_id")
	pcols, err := tableColumns(ctx, ids.db, ids.dialect, ids.tables.perms)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", ids.tables.perms, err)
	}
	s.hasPerms = slices.Contains(pcols, ids.tables.col)
	ids.shapeCache.Store(s)
	return s, nil
}

type userRow struct {
	password                 string
	username                 string
	active, staff, superuser bool
}

// maxInList bounds the values bound in one IN list; a longer list is split
// into several statements.
const maxInList = 2000

// inChunks calls f with consecutive parts of xs, each at most maxInList
// long, and returns how many times it called f.
func inChunks[T any](xs []T, f func(part []T) error) (int, error) {
	n := 0
	for len(xs) > 0 {
		k := min(len(xs), maxInList)
		n++
		if err := f(xs[:k]); err != nil {
			return n, err
		}
		xs = xs[k:]
	}
	return n, nil
}

// sessionRow is a live django_session row.
type sessionRow struct {
	data  string
	until time.Time
}

// sessionRows reads the live django_session rows of keys, keyed by their
// session_key exactly as stored.
func (ids *Identities) sessionRows(ctx context.Context, keys []string, now time.Time) (map[string]sessionRow, int, error) {
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	var nowArg any = now
	expire := "expire_date"
	if ids.dialect != Postgres {
		// Django compares SQLite's naive text with now formatted the same
		// way: UTC with USE_TZ, TIME_ZONE's wall clock without.
		loc := time.UTC
		if !ids.cfg.UseTZ {
			loc = ids.cfg.TimeZone
		}
		nowArg = pythonDatetime(now.In(loc))
		expire = "CAST(expire_date AS TEXT) AS expire_date"
	}
	q := `SELECT session_key, session_data, ` + expire + ` FROM django_session WHERE session_key IN (?) AND expire_date > ?`
	rows := make(map[string]sessionRow, len(keys))
	n, err := inChunks(keys, func(part []string) error {
		query, args, err := sqlx.In(q, part, nowArg)
		if err != nil {
			return err
		}
		var got []struct {
			Key    string `db:"session_key"`
			Data   string `db:"session_data"`
			Expire any    `db:"expire_date"`
		}
		if err := ids.db.SelectContext(ctx, &got, ids.db.Rebind(query), args...); err != nil {
			return err
		}
		for _, r := range got {
			rows[r.Key] = sessionRow{data: r.Data, until: ids.expiry(r.Expire)}
		}
		return nil
	})
	if err != nil {
		return nil, n, fmt.Errorf("read django_session: %w", err)
	}
	return rows, n, nil
}

// pkArg is the value to bind for a user's primary key.
func (ids *Identities) pkArg(shape *userShape, pk string) (any, bool) {
	if shape.uuid {
		if ids.dialect == SQLite {
			return strings.ReplaceAll(pk, "-", ""), true
		}
		return pk, true
	}
	bits := 64
	if shape.int32Key {
		bits = 32 // a larger id matches no row, and must not be a database error
	}
	n, err := strconv.ParseInt(pk, 10, bits)
	return n, err == nil
}

// pkArgs binds the distinct primary keys of pks that some row could have.
func (ids *Identities) pkArgs(shape *userShape, pks []string) []any {
	pks = slices.Compact(slices.Sorted(slices.Values(pks)))
	args := make([]any, 0, len(pks))
	for _, pk := range pks {
		if a, ok := ids.pkArg(shape, pk); ok {
			args = append(args, a)
		}
	}
	return args
}

// userRows reads the user rows of pks, keyed by primary key as toPK
// renders it. A row Django could not load is left out.
func (ids *Identities) userRows(ctx context.Context, shape *userShape, pks []string) (map[string]userRow, int, error) {
	col := func(has bool, name, absent string) string {
		if has {
			return name
		}
		return absent + " AS " + name
	}
	username := "''"
	if shape.hasUsername {
		username = quote(ids.cfg.UsernameField)
	}
	q := fmt.Sprintf(`SELECT id AS flagproxy_id, password, %s AS flagproxy_username, %s, %s, %s FROM %s WHERE id IN (?)`,
		username, col(shape.hasActive, "is_active", "1"), col(shape.hasStaff, "is_staff", "0"), col(shape.hasSuper, "is_superuser", "0"),
		quote(ids.tables.user))
	rows := map[string]userRow{}
	n, err := inChunks(ids.pkArgs(shape, pks), func(part []any) error {
		query, args, err := sqlx.In(q, part)
		if err != nil {
			return err
		}
		var got []struct {
			ID        userKey `db:"flagproxy_id"`
			Password  text    `db:"password"`
			Username  text    `db:"flagproxy_username"`
			Active    pyBool  `db:"is_active"`
			Staff     pyBool  `db:"is_staff"`
			Superuser pyBool  `db:"is_superuser"`
		}
		if err := ids.db.SelectContext(ctx, &got, ids.db.Rebind(query), args...); err != nil {
			return err
		}
		for _, r := range got {
			if r.Password.Invalid != "" {
				continue
			}
			rows[string(r.ID)] = userRow{password: r.Password.String, username: r.Username.String,
				active: r.Active.Bool, staff: r.Staff.Bool, superuser: r.Superuser.Bool}
		}
		return nil
	})
	if err != nil {
		return nil, n, fmt.Errorf("read %s: %w", ids.tables.user, err)
	}
	return rows, n, nil
}

// groupsOf reads the group ids of users pks, each list in ascending order.
func (ids *Identities) groupsOf(ctx context.Context, shape *userShape, pks []string) (map[string][]int64, int, error) {
	out := map[string][]int64{}
	if !shape.hasGrp {
		return out, 0, nil
	}
	user := quote(ids.tables.col)
	q := fmt.Sprintf(`SELECT %s AS flagproxy_user, group_id FROM %s WHERE %s IN (?) ORDER BY group_id`, user, quote(ids.tables.groups), user)
	n, err := inChunks(ids.pkArgs(shape, pks), func(part []any) error {
		query, args, err := sqlx.In(q, part)
		if err != nil {
			return err
		}
		var got []struct {
			User  userKey `db:"flagproxy_user"`
			Group int64   `db:"group_id"`
		}
		if err := ids.db.SelectContext(ctx, &got, ids.db.Rebind(query), args...); err != nil {
			return err
		}
		for _, r := range got {
			out[string(r.User)] = append(out[string(r.User)], r.Group)
		}
		return nil
	})
	if err != nil {
		return nil, n, fmt.Errorf("read %s: %w", ids.tables.groups, err)
	}
	return out, n, nil
}

// permissionsOf returns ModelBackend's permission sets of active users
// pks: "<content type app_label>.<codename>" for every permission linked
// directly or through a group, joined by names, never by ids; sorted, and
// empty rather than nil for each of pks.
func (ids *Identities) permissionsOf(ctx context.Context, shape *userShape, pks []string) (map[string][]string, int, error) {
	out := make(map[string][]string, len(pks))
	for _, pk := range pks {
		out[pk] = []string{}
	}
	user := quote(ids.tables.col)
	var parts []string
	if shape.hasPerms {
		parts = append(parts, fmt.Sprintf(`SELECT up.%s AS flagproxy_user, ct.app_label, p.codename FROM %s up
			JOIN auth_permission p ON p.id = up.permission_id
			JOIN django_content_type ct ON ct.id = p.content_type_id
			WHERE up.%s IN (?)`, user, quote(ids.tables.perms), user))
	}
	if shape.hasGrp {
		parts = append(parts, fmt.Sprintf(`SELECT ug.%s AS flagproxy_user, ct.app_label, p.codename FROM %s ug
			JOIN auth_group_permissions gp ON gp.group_id = ug.group_id
			JOIN auth_permission p ON p.id = gp.permission_id
			JOIN django_content_type ct ON ct.id = p.content_type_id
			WHERE ug.%s IN (?)`, user, quote(ids.tables.groups), user))
	}
	if len(parts) == 0 || len(pks) == 0 {
		return out, 0, nil
	}
	q := strings.Join(parts, " UNION ")
	n, err := inChunks(ids.pkArgs(shape, pks), func(part []any) error {
		lists := make([]any, len(parts))
		for i := range lists {
			lists[i] = part
		}
		query, args, err := sqlx.In(q, lists...)
		if err != nil {
			return err
		}
		var got []struct {
			User     userKey `db:"flagproxy_user"`
			App      string  `db:"app_label"`
			Codename string  `db:"codename"`
		}
		if err := ids.db.SelectContext(ctx, &got, ids.db.Rebind(query), args...); err != nil {
			return err
		}
		for _, r := range got {
			if perms, ok := out[string(r.User)]; ok {
				out[string(r.User)] = append(perms, r.App+"."+r.Codename)
			}
		}
		return nil
	})
	if err != nil {
		return nil, n, fmt.Errorf("read permissions: %w", err)
	}
	for pk, perms := range out {
		slices.Sort(perms)
		out[pk] = slices.Compact(perms)
	}
	return out, n, nil
}

// queryer is what tableColumns needs of a database or transaction.
type queryer interface {
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
}

// tableColumns lists a table's columns in order; none if it does not exist.
func tableColumns(ctx context.Context, q queryer, dialect Dialect, table string) ([]string, error) {
	query, arg := `SELECT name FROM pragma_table_info(?)`, table
	if dialect == Postgres {
		query = `SELECT a.attname FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attnum`
		arg = quote(table)
	}
	var cols []string
	err := q.SelectContext(ctx, &cols, query, arg)
	return cols, err
}

var _ queryer = (*sqlx.DB)(nil)
