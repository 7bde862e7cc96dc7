package djangodb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

// userShape reads (once) what the user model's tables look like: whether
// the primary key is a UUID, which of is_active, is_staff and is_superuser
// exist (AbstractBaseUser without PermissionsMixin has fewer), and whether
// the groups table exists.
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
	ids.shapeCache.Store(s)
	return s, nil
}

type userRow struct {
	password                 string
	username                 string
	active, staff, superuser bool
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

func (ids *Identities) userRow(ctx context.Context, shape *userShape, pk string) (userRow, bool, error) {
	arg, ok := ids.pkArg(shape, pk)
	if !ok {
		return userRow{}, false, nil
	}
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
	q := fmt.Sprintf(`SELECT password, %s AS flagproxy_username, %s, %s, %s FROM %s WHERE id = ?`,
		username, col(shape.hasActive, "is_active", "1"), col(shape.hasStaff, "is_staff", "0"), col(shape.hasSuper, "is_superuser", "0"),
		quote(ids.tables.user))
	var r struct {
		Password  text   `db:"password"`
		Username  text   `db:"flagproxy_username"`
		Active    pyBool `db:"is_active"`
		Staff     pyBool `db:"is_staff"`
		Superuser pyBool `db:"is_superuser"`
	}
	err := ids.db.GetContext(ctx, &r, ids.db.Rebind(q), arg)
	if errors.Is(err, sql.ErrNoRows) {
		return userRow{}, false, nil
	}
	if err != nil {
		return userRow{}, false, fmt.Errorf("read %s: %w", ids.tables.user, err)
	}
	if r.Password.Invalid != "" {
		return userRow{}, false, nil
	}
	return userRow{password: r.Password.String, username: r.Username.String,
		active: r.Active.Bool, staff: r.Staff.Bool, superuser: r.Superuser.Bool}, true, nil
}

func (ids *Identities) groups(ctx context.Context, shape *userShape, pk string) ([]int64, error) {
	if !shape.hasGrp {
		return nil, nil
	}
	arg, _ := ids.pkArg(shape, pk)
	var out []int64
	q := fmt.Sprintf(`SELECT group_id FROM %s WHERE %s = ? ORDER BY group_id`, quote(ids.tables.groups), quote(ids.tables.col))
	if err := ids.db.SelectContext(ctx, &out, ids.db.Rebind(q), arg); err != nil {
		return nil, fmt.Errorf("read %s: %w", ids.tables.groups, err)
	}
	return out, nil
}

// permissions returns ModelBackend's permission set of an active user:
// "<content type app_label>.<codename>" for every permission linked
// directly or through a group, joined by names, never by ids.
func (ids *Identities) permissions(ctx context.Context, shape *userShape, pk string) ([]string, error) {
	arg, _ := ids.pkArg(shape, pk)
	cols, err := tableColumns(ctx, ids.db, ids.dialect, ids.tables.perms)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", ids.tables.perms, err)
	}
	var parts []string
	var args []any
	if slices.Contains(cols, ids.tables.col) {
		parts = append(parts, fmt.Sprintf(`SELECT ct.app_label, p.codename FROM %s up
			JOIN auth_permission p ON p.id = up.permission_id
			JOIN django_content_type ct ON ct.id = p.content_type_id
			WHERE up.%s = ?`, quote(ids.tables.perms), quote(ids.tables.col)))
		args = append(args, arg)
	}
	if shape.hasGrp {
		parts = append(parts, fmt.Sprintf(`SELECT ct.app_label, p.codename FROM %s ug
			JOIN auth_group_permissions gp ON gp.group_id = ug.group_id
			JOIN auth_permission p ON p.id = gp.permission_id
			JOIN django_content_type ct ON ct.id = p.content_type_id
			WHERE ug.%s = ?`, quote(ids.tables.groups), quote(ids.tables.col)))
		args = append(args, arg)
	}
	if len(parts) == 0 {
		return nil, nil
	}
	var rows []struct {
		App      string `db:"app_label"`
		Codename string `db:"codename"`
	}
	q := strings.Join(parts, " UNION ")
	if err := ids.db.SelectContext(ctx, &rows, ids.db.Rebind(q), args...); err != nil {
		return nil, fmt.Errorf("read permissions: %w", err)
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.App+"."+r.Codename)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
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
