package djangodb

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// Informative columns: waffle's note, created and modified, and
// feature-flipper's description. They never change a decision or the
// snapshot's version (engine.Info), and are read only where the table has
// them (a swapped-in WAFFLE_FLAG_MODEL may lack them): a column that is
// missing is selected as NULL, and a value that cannot be read is left
// empty rather than making its row invalid.

// maxGroupNames bounds the auth_group rows whose names one load reads.
const maxGroupNames = 1000

// infoColumns returns the select list of the columns cols of table: each
// column that exists, else NULL under its name.
func (l *Loader) infoColumns(ctx context.Context, t tx, table string, cols ...string) (string, error) {
	have, err := l.columns(ctx, t, table)
	if err != nil {
		return "", fmt.Errorf("columns of %s: %w", table, err)
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		if slices.Contains(have, c) {
			parts[i] = quote(c)
		} else {
			parts[i] = "NULL AS " + quote(c)
		}
	}
	return strings.Join(parts, ", "), nil
}

// waffleInfo are the informative columns of waffle's tables.
var waffleInfo = []string{"note", "created", "modified"}

// info returns the informative fields of a waffle row.
func info(note text, created, modified when) engine.Info {
	return engine.Info{Note: note.String, Created: created.Time, Modified: modified.Time}
}

// when is a datetime column read for information: a time, or zero when it
// is NULL or unreadable.
type when struct{ Time time.Time }

// whenLayouts are the text forms SQLite keeps Django's datetimes in.
var whenLayouts = []string{"2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999"}

func (w *when) Scan(v any) error {
	*w = when{}
	var s string
	switch x := v.(type) {
	case time.Time:
		w.Time = x
		return nil
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		return nil
	}
	for _, layout := range whenLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			w.Time = t
			return nil
		}
	}
	return nil
}

// readGroupNames reads the names of the auth_group rows d's waffle flags
// link to, when auth_group exists.
func readGroupNames(ctx context.Context, t tx, tables map[string]struct{}, d *engine.Data) error {
	if _, ok := tables["auth_group"]; !ok {
		return nil
	}
	var ids []int64
	for _, f := range d.WaffleFlags {
		ids = append(ids, f.Groups...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return nil
	}
	ids = ids[:min(len(ids), maxGroupNames)]
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = strconv.FormatInt(id, 10)
	}
	var rows []struct {
		ID   int64 `db:"id"`
		Name text  `db:"name"`
	}
	q := `SELECT id, name FROM auth_group WHERE id IN (` + strings.Join(list, ", ") + `) ORDER BY id`
	if err := t.SelectContext(ctx, &rows, q); err != nil {
		return readErr("auth_group", err)
	}
	for _, r := range rows {
		if r.Name.Invalid == "" {
			d.Groups = append(d.Groups, engine.Group{ID: r.ID, Name: r.Name.String})
		}
	}
	return nil
}
