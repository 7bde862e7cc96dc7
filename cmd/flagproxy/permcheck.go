package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/flagproxy/flagproxy/djangodb"
)

// checkFlipPermissions warns, for --check-config, when a permission named
// by --flip-permission does not exist in the database (when the database
// can be reached): nobody could be granted it. With the default list, a
// site has only one of the two (feature-flipper's or flagproxy_django's),
// so only "none of them exists" is worth a warning.
func checkFlipPermissions(ctx context.Context, c *Config, w io.Writer) {
	if c.target.Dialect == djangodb.File {
		return
	}
	db, err := djangodb.Open(c.target)
	if err != nil {
		fmt.Fprintf(w, "flagproxy: note: the database could not be opened to check --flip-permission: %v\n", err)
		return
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	perms := c.overrides.Permissions
	missing, err := djangodb.MissingPermissions(ctx, db, perms)
	switch {
	case err != nil:
		fmt.Fprintf(w, "flagproxy: note: could not check --flip-permission in the database: %v\n", err)
	case len(missing) == len(perms):
		fmt.Fprintf(w, "flagproxy: warning: no permission named by --flip-permission exists (%s): only active superusers can flip; "+
			"add flagproxy_django to INSTALLED_APPS and migrate, or name an existing permission\n", strings.Join(missing, ", "))
	case c.FlipPermission != defaultFlipPermissions():
		for _, m := range missing {
			fmt.Fprintf(w, "flagproxy: warning: the permission %s named by --flip-permission does not exist\n", m)
		}
	}
}
