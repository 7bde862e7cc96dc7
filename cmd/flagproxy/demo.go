package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/flagproxy/flagproxy/djangodb"
	"github.com/flagproxy/flagproxy/proxy"
)

//go:embed demo.sql
var demoSeed string

//go:embed demo.html
var demoPage string

// demoCommand runs flagproxy in front of a built-in stand-in for a Django
// site, on a fresh SQLite database with Django's schema and sample flags.
func demoCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", DefaultListen, "`address` of the demo (the proxy)")
	adminListen := fs.String("admin-listen", DefaultAdminListen, "`address` for /healthz, /readyz and /metrics")
	dir := fs.String("dir", "", "`directory` for the demo database (default: a new temporary directory, removed at exit)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: flagproxy demo [options]\n\nRuns flagproxy on a fresh SQLite database with Django's schema and sample\nflags, in front of a built-in page that shows the flags the app receives.\n\nOptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "flagproxy-demo-")
		if err != nil {
			fmt.Fprintf(stderr, "flagproxy demo: %v\n", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	dbPath := filepath.Join(*dir, "db.sqlite3")
	if err := djangodb.CreateSQLite(ctx, dbPath, demoSeed); err != nil {
		fmt.Fprintf(stderr, "flagproxy demo: %v\n", err)
		return 1
	}

	// The demo's users (demo_users.go): only alice may flip.
	settingsPath := filepath.Join(*dir, "settings.json")
	if err := os.WriteFile(settingsPath, []byte(`{"SECRET_KEY": "`+demoSecretKey+`"}`), 0o600); err != nil {
		fmt.Fprintf(stderr, "flagproxy demo: %v\n", err)
		return 1
	}

	site, err := newDemoSite(dbPath)
	if err != nil {
		fmt.Fprintf(stderr, "flagproxy demo: %v\n", err)
		return 1
	}
	defer site.db.Close()
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(stderr, "flagproxy demo: %v\n", err)
		return 1
	}
	siteSrv := &http.Server{Handler: site, ReadHeaderTimeout: 5 * time.Second}
	go siteSrv.Serve(sln) //nolint:errcheck // closed below
	defer siteSrv.Close()

	c, err := parseConfig("serve", []string{
		"--listen", *listen, "--admin-listen", *adminListen,
		"--upstream", "http://" + sln.Addr().String(), "--database", "sqlite:///" + dbPath,
		// The key signs the sample users' sessions and the override cookie.
		"--django-settings", settingsPath,
		"--override-cookie-secure=false",
	}, func(string) string { return "" }, stderr)
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		reportConfigError(stderr, err)
		return 2
	}
	log := c.newLogger(stderr)
	err = serve(ctx, c, log, func(p, a net.Addr) {
		site.admin.set("http://" + a.String())
		fmt.Fprintf(stdout, "\nflagproxy demo\n\n"+
			"  open        http://%s/\n"+
			"  console     http://%s/_flagproxy/ (log in as alice on the page first)\n"+
			"  flags       http://%s/flags\n"+
			"  explain     http://%s/explain?flag=beta_dashboard&user=2\n"+
			"  metrics     http://%s/metrics\n"+
			"  database    %s (SQLite, Django's schema)\n\n"+
			"The page is a stand-in for your Django app: it shows the X-Flagproxy-Flags\n"+
			"header it received. Log in as a sample user, open the console, flip a flag;\n"+
			"or flip a row (written as Django's admin would) and see the header follow.\n"+
			"Press Ctrl-C to stop.\n\n", p, p, a, a, a, dbPath)
	})
	if err != nil {
		log.Error("demo stopped", "error", err)
		return 1
	}
	return 0
}

// demoSite stands in for the Django app behind the proxy: it renders the
// flags header it receives and lets the visitor change rows in the
// database, as the Django admin would.
type demoSite struct {
	db    *sqlx.DB
	page  *template.Template
	admin demoAdmin
}

// demoSecretKey is the demo site's SECRET_KEY.
const demoSecretKey = "flagproxy-demo-secret-key"

func newDemoSite(path string) (*demoSite, error) {
	db, err := sqlx.Open("sqlite3", "file:"+path+"?_txlock=immediate&_busy_timeout=5000")
	if err != nil {
		return nil, err
	}
	page, err := template.New("demo").Parse(demoPage)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &demoSite{db: db, page: page}, nil
}

// demoRow is a row the visitor can flip.
type demoRow struct {
	Table, Name, Column string
	On                  bool
	Note, Rule          string
}

// demoToggles lists the rows the page offers to flip, and how.
var demoToggles = []struct{ table, name, column, note string }{
	{"waffle_flag", "name", "everyone", "waffle flag: everyone on, or NULL (decide by the other columns)"},
	{"waffle_switch", "name", "active", "waffle switch"},
	{"featureflipper_feature", "name", "enabled", "feature-flipper feature"},
	{"flags_featureflag", "key", "enabled", "FeatureFlag model"},
}

func (s *demoSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/flip" && r.Method == http.MethodPost:
		s.flip(w, r)
	case r.URL.Path == "/login" && r.Method == http.MethodPost:
		s.login(w, r)
	case r.URL.Path == "/favicon.ico":
		http.NotFound(w, r)
	default:
		s.show(w, r)
	}
}

func (s *demoSite) show(w http.ResponseWriter, r *http.Request) {
	type entry struct {
		Kind, Name string
		On         bool
		Source     string
		Rule, Note string
	}
	data := struct {
		Payload proxy.Payload
		Err     error
		Raw     string
		Entries []entry
		Rows    []demoRow
		Path    string
		Changed bool
		Waiting bool
		User    string
		Users   any
	}{Raw: r.Header.Get(proxy.FlagsHeader), Path: r.URL.RequestURI(), Changed: r.URL.Query().Has("changed"),
		Waiting: r.URL.Query().Has("waiting"), User: whoIs(r), Users: demoUsers}
	rules := s.admin.rules(r.Context())
	data.Payload, data.Err = proxy.Decode(r.Header)
	add := func(kind string, m map[string]bool) {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			e := entry{Kind: kind, Name: n, On: m[n], Rule: rules[kind+" "+n][0], Note: rules[kind+" "+n][1]}
			if kind == "flag" {
				e.Source = data.Payload.Sources[n]
			}
			data.Entries = append(data.Entries, e)
		}
	}
	add("flag", data.Payload.Flags)
	add("switch", data.Payload.Switches)
	add("sample", data.Payload.Samples)
	for _, t := range demoToggles {
		var rows []struct {
			Name string `db:"name"`
			On   *bool  `db:"state"`
		}
		q := fmt.Sprintf(`SELECT %s AS name, %s AS state FROM %s ORDER BY 1`, t.name, t.column, t.table)
		if err := s.db.SelectContext(r.Context(), &rows, q); err != nil {
			http.Error(w, "demo database: "+err.Error(), http.StatusInternalServerError)
			return
		}
		for _, row := range rows {
			kind := "flag"
			if t.table == "waffle_switch" {
				kind = "switch"
			}
			data.Rows = append(data.Rows, demoRow{Table: t.table, Name: row.Name, Column: t.column, On: row.On != nil && *row.On,
				Note: t.note, Rule: rules[kind+" "+row.Name][0]})
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.page.Execute(w, data); err != nil {
		slog.Default().Debug("demo page", "error", err)
	}
}

func (s *demoSite) flip(w http.ResponseWriter, r *http.Request) {
	table, name := r.PostFormValue("table"), r.PostFormValue("name")
	for _, t := range demoToggles {
		if t.table != table {
			continue
		}
		// everyone flips between TRUE and NULL; the others between 1 and 0.
		set := fmt.Sprintf(`UPDATE %s SET %s = CASE WHEN %s THEN 0 ELSE 1 END WHERE %s = ?`, t.table, t.column, t.column, t.name)
		if t.column == "everyone" {
			set = fmt.Sprintf(`UPDATE %s SET everyone = CASE WHEN everyone THEN NULL ELSE 1 END WHERE %s = ?`, t.table, t.name)
		}
		old := s.admin.version(r.Context())
		if _, err := s.db.ExecContext(r.Context(), set, name); err != nil {
			http.Error(w, "demo database: "+err.Error(), http.StatusInternalServerError)
			return
		}
		// Land on a page that already shows the change.
		if old != "" && s.admin.waitForNewVersion(r.Context(), old) {
			http.Redirect(w, r, "/?changed", http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, "/?changed&waiting", http.StatusSeeOther)
		return
	}
	http.Error(w, "unknown table", http.StatusBadRequest)
}
