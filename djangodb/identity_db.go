package djangodb

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
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

// maxInList bounds the values bound in one list; a longer list is split
// into several statements.
const maxInList = 2000

// in is the condition that col is one of the values of the list bound to
// its one parameter (see lists): a JSON array read by json_each on SQLite,
// an array on PostgreSQL. One parameter, whatever the list's length, keeps
// a statement's text the same from batch to batch, so that SQLite's driver
// prepares it once (see parseSQLite) where a thousand placeholders took
// longer to parse than the query took to run, and PostgreSQL gets no list
// of thousands of parameters to parse and plan.
func (ids *Identities) in(col string) string {
	if ids.dialect == Postgres {
		return col + " = ANY(?)"
	}
	return col + " IN (SELECT value FROM json_each(?))"
}

// lists binds xs for in: one list for each maxInList values.
func lists[T string | int64](d Dialect, xs []T) []any {
	var out []any
	for part := range slices.Chunk(xs, maxInList) {
		out = append(out, list(d, part))
	}
	return out
}

// list binds xs as one list for in.
func list[T string | int64](d Dialect, xs []T) any {
	switch xs := any(xs).(type) {
	case []string:
		if d == Postgres {
			return pq.StringArray(xs)
		}
		b, _ := json.Marshal(xs) // strings always encode
		return string(b)
	case []int64:
		if d == Postgres {
			return pq.Int64Array(xs)
		}
		b := []byte{'['}
		for i, x := range xs {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, x, 10)
		}
		return string(append(b, ']'))
	}
	panic("unreachable")
}

// sessionRow is a live django_session row.
type sessionRow struct {
	data  string
	until time.Time
}

// sessionRows reads the live django_session rows of keys, keyed by their
// session_key exactly as stored, and returns how many statements it ran.
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
	q := ids.db.Rebind(`SELECT session_key, session_data, ` + expire + ` FROM django_session WHERE ` +
		ids.in("session_key") + ` AND expire_date > ?`)
	rows := make(map[string]sessionRow, len(keys))
	n, err := each(lists(ids.dialect, keys), func(bound any) error {
		var key, data string
		var expire any
		return ids.eachRow(ctx, q, []any{bound, nowArg}, []any{&key, &data, &expire}, func() {
			rows[key] = sessionRow{data: data, until: ids.expiry(expire)}
		})
	})
	if err != nil {
		return nil, n, fmt.Errorf("read django_session: %w", err)
	}
	return rows, n, nil
}

// eachRow runs the query q, scans each row into dest and calls row: what
// sqlx's Select does, without a reflected struct and the scan's arguments
// allocated for every row (a re-check reads three or four rows a session,
// 3,000 sessions a second when 10,000 are in use).
func (ids *Identities) eachRow(ctx context.Context, q string, args, dest []any, row func()) error {
	rows, err := ids.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		row()
	}
	return rows.Err()
}

// each calls f with each of the bound lists until it fails, and returns
// how many times it called f.
func each(bound []any, f func(bound any) error) (int, error) {
	for i, b := range bound {
		if err := f(b); err != nil {
			return i + 1, err
		}
	}
	return len(bound), nil
}

// pkLists binds, for in, the distinct primary keys of pks that some row
// could have.
func (ids *Identities) pkLists(shape *userShape, pks []string) []any {
	pks = slices.Compact(slices.Sorted(slices.Values(pks)))
	if shape.uuid {
		hex := make([]string, len(pks))
		for i, pk := range pks {
			hex[i] = pk
			if ids.dialect == SQLite {
				hex[i] = strings.ReplaceAll(pk, "-", "") // char(32)
			}
		}
		return lists(ids.dialect, hex)
	}
	bits := 64
	if shape.int32Key {
		bits = 32 // a larger id matches no row, and must not be a database error
	}
	ns := make([]int64, 0, len(pks))
	for _, pk := range pks {
		if n, err := strconv.ParseInt(pk, 10, bits); err == nil {
			ns = append(ns, n)
		}
	}
	return lists(ids.dialect, ns)
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
	q := ids.db.Rebind(fmt.Sprintf(`SELECT id AS flagproxy_id, password, %s AS flagproxy_username, %s, %s, %s FROM %s WHERE %s`,
		username, col(shape.hasActive, "is_active", "1"), col(shape.hasStaff, "is_staff", "0"), col(shape.hasSuper, "is_superuser", "0"),
		quote(ids.tables.user), ids.in("id")))
	rows := map[string]userRow{}
	n, err := each(ids.pkLists(shape, pks), func(bound any) error {
		var id userKey
		var password, username text
		var active, staff, superuser pyBool
		dest := []any{&id, &password, &username, &active, &staff, &superuser}
		return ids.eachRow(ctx, q, []any{bound}, dest, func() {
			if password.Invalid == "" {
				rows[string(id)] = userRow{password: password.String, username: username.String,
					active: active.Bool, staff: staff.Bool, superuser: superuser.Bool}
			}
		})
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
	q := ids.db.Rebind(fmt.Sprintf(`SELECT %s AS flagproxy_user, group_id FROM %s WHERE %s ORDER BY group_id`,
		user, quote(ids.tables.groups), ids.in(user)))
	n, err := each(ids.pkLists(shape, pks), func(bound any) error {
		var uid userKey
		var group int64
		return ids.eachRow(ctx, q, []any{bound}, []any{&uid, &group}, func() {
			out[string(uid)] = append(out[string(uid)], group)
		})
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
			WHERE %s`, user, quote(ids.tables.perms), ids.in("up."+user)))
	}
	if shape.hasGrp {
		parts = append(parts, fmt.Sprintf(`SELECT ug.%s AS flagproxy_user, ct.app_label, p.codename FROM %s ug
			JOIN auth_group_permissions gp ON gp.group_id = ug.group_id
			JOIN auth_permission p ON p.id = gp.permission_id
			JOIN django_content_type ct ON ct.id = p.content_type_id
			WHERE %s`, user, quote(ids.tables.groups), ids.in("ug."+user)))
	}
	if len(parts) == 0 || len(pks) == 0 {
		return out, 0, nil
	}
	q := ids.db.Rebind(strings.Join(parts, " UNION "))
	n, err := each(ids.pkLists(shape, pks), func(bound any) error {
		args := make([]any, len(parts)) // the list, once for each part
		for i := range args {
			args[i] = bound
		}
		var uid userKey
		var app, codename string
		return ids.eachRow(ctx, q, args, []any{&uid, &app, &codename}, func() {
			if perms, ok := out[string(uid)]; ok {
				out[string(uid)] = append(perms, app+"."+codename)
			}
		})
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
