package djangodb

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// MissingPermissions returns those of perms ("app_label.codename") that
// no auth_permission row defines, in their order, for --check-config's
// warning about a flip permission nobody can be granted.
func MissingPermissions(ctx context.Context, db *sqlx.DB, perms []string) ([]string, error) {
	var have []string
	q := `SELECT ct.app_label || '.' || p.codename FROM auth_permission p
		JOIN django_content_type ct ON ct.id = p.content_type_id`
	if err := db.SelectContext(ctx, &have, q); err != nil {
		return nil, fmt.Errorf("read auth_permission: %w", err)
	}
	known := make(map[string]bool, len(have))
	for _, h := range have {
		known[h] = true
	}
	var missing []string
	for _, p := range perms {
		if !known[strings.TrimSpace(p)] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}
