package djangodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lib/pq"
)

// pgTable is a flag table that exists, with its pg_class.relkind.
type pgTable struct{ name, kind string }

// catalogQuery reads, for the flag tables (%s) that exist, what a poll
// needs from the catalog: their names and kinds, those without the
// notification trigger, and a signature of their definitions (the xmin of
// the pg_class row and of each pg_attribute row changes with every
// CREATE, DROP, RENAME or ALTER of the table or a column). Names resolve as
// the Loader's unqualified names do: the first table of that name on the
// search_path.
const catalogQueryFormat = `WITH cat AS (
	SELECT c.relname::text AS name, c.relkind::text AS kind, c.xmin::text AS cx,
		EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
			WHERE t.tgrelid = c.oid AND t.tgname = '` + NotifyTrigger + `' AND t.tgenabled IN ('O', 'A')) AS trig,
		(SELECT coalesce(string_agg(a.attnum::text || '.' || a.xmin::text, ',' ORDER BY a.attnum), '')
			FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0) AS cols
	FROM pg_catalog.pg_class c
	WHERE c.relname = ANY (%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND pg_catalog.pg_table_is_visible(c.oid)
)
SELECT
	(SELECT coalesce(array_agg(name ORDER BY name), '{}') FROM cat),
	(SELECT coalesce(array_agg(kind ORDER BY name), '{}') FROM cat),
	(SELECT coalesce(array_agg(name ORDER BY name) FILTER (WHERE NOT trig), '{}') FROM cat),
	(SELECT coalesce(string_agg(name || ':' || kind || ':' || cx || ':' || cols, ';' ORDER BY name), '') FROM cat)`

// rowsFingerprint is the part of the fingerprint query for one table: a
// digest of the set of its visible row versions. Every INSERT and UPDATE
// makes a row version with a new xmin (the writing transaction's id) and
// ctid; a DELETE removes one. So the set of (tableoid, ctid, xmin) of the
// rows a statement sees changes with every committed change, and stays the
// same otherwise, except that VACUUM FULL, CLUSTER and a table rewrite move
// rows (a spurious reload). A view or foreign table has no row versions:
// its rows' text is digested instead.
func rowsFingerprint(t pgTable) string {
	if t.kind == "v" || t.kind == "f" {
		return `(SELECT coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM ` + quote(t.name) + ` x)`
	}
	return `(SELECT coalesce(md5(string_agg(tableoid::text || ctid::text || xmin::text, ',' ORDER BY tableoid, ctid)), '') FROM ` + quote(t.name) + `)`
}

// catalogQuery returns catalogQueryFormat for tables. The names are
// written into the query, not passed as a parameter: lib/pq sends a query
// without parameters in one round trip instead of two. They are plain
// identifiers (Config.resolve checks them), so quoting cannot go wrong.
func catalogQuery(tables []string) string {
	quoted := make([]string, len(tables))
	for i, t := range tables {
		quoted[i] = "'" + strings.ReplaceAll(t, "'", "''") + "'"
	}
	return fmt.Sprintf(catalogQueryFormat, "ARRAY["+strings.Join(quoted, ", ")+"]::text[]")
}

// fingerprintQuery is the catalog query followed by the rows' fingerprint
// of each table of present: one statement, so one snapshot. It reads every
// row of the flag tables, but only their system columns: for a site with
// 200 flags and 1,000 user links it costs about 1 ms.
func fingerprintQuery(catalog string, present []pgTable) string {
	var b strings.Builder
	b.WriteString(catalog)
	for _, t := range present {
		b.WriteString(",\n\t")
		b.WriteString(rowsFingerprint(t))
	}
	return b.String()
}

// catalog is what catalogQuery returns.
type catalog struct {
	present   []pgTable
	untrigger []string
	schema    string
	rows      []string
}

// queryCatalog runs the catalog query, with the rows' fingerprint of
// present when rows is true.
func (w *Watch) queryCatalog(ctx context.Context, present []pgTable, rows bool) (catalog, error) {
	q := w.catalogQuery
	if rows {
		q = fingerprintQuery(q, present)
	} else {
		present = nil
	}
	var c catalog
	var names, kinds []string
	dest := []any{pq.Array(&names), pq.Array(&kinds), pq.Array(&c.untrigger), &c.schema}
	c.rows = make([]string, len(present))
	for i := range present {
		dest = append(dest, &c.rows[i])
	}
	if err := w.db.QueryRowContext(ctx, q).Scan(dest...); err != nil {
		return catalog{}, fmt.Errorf("fingerprint of the flag tables: %w", err)
	}
	if len(names) != len(kinds) {
		return catalog{}, errors.New("fingerprint of the flag tables: names and kinds differ in length")
	}
	for i := range names {
		c.present = append(c.present, pgTable{names[i], kinds[i]})
	}
	return c, nil
}

// postgresToken returns the token of the flag tables' state. While
// notifications are active it is the listener's epoch, the number of
// notifications received and the catalog signature: rows changed when a
// notification came. Otherwise it is the catalog signature and the rows'
// fingerprint of every flag table.
func (w *Watch) postgresToken(ctx context.Context) (string, error) {
	// Retry when the query was built for another set of tables than the
	// catalog now lists, or when notifications stopped covering them: a
	// token must describe every table that exists.
	for range 3 {
		notify, epoch, gen := w.notifying()
		present := w.present
		c, err := w.queryCatalog(ctx, present, !notify)
		if err != nil {
			w.present = nil // a table may have gone: list them again
			return "", err
		}
		w.present = c.present
		w.setTriggers(c.untrigger)
		if notify {
			if ok, e, _ := w.notifying(); !ok || e != epoch {
				continue
			}
			return "nt:" + strconv.FormatUint(epoch, 10) + ":" + strconv.FormatUint(gen, 10) + "|" + c.schema, nil
		}
		if !slices.Equal(present, c.present) {
			continue
		}
		return "fp|" + c.schema + "|" + strings.Join(c.rows, ","), nil
	}
	return "", errors.New("fingerprint of the flag tables: the tables kept changing")
}
