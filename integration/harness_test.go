//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq"
	_ "github.com/mattn/go-sqlite3"
)

const python = "/usr/bin/python3"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// flagproxyBinary builds cmd/flagproxy from this tree once per test run.
func flagproxyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		// go test caches results by the files the test itself opens; the
		// binary is built from the whole module, so open its sources too,
		// or a changed proxy would not re-run these tests.
		if err := readModuleSources(".."); err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "flagproxy-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "flagproxy")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/flagproxy").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// readModuleSources reads every Go source and module file under root.
func readModuleSources(root string) error {
	return filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if n := d.Name(); !d.IsDir() && (strings.HasSuffix(n, ".go") || n == "go.mod" || n == "go.sum" || strings.HasSuffix(n, ".py") || strings.HasSuffix(n, ".html") || strings.HasSuffix(n, ".sql")) {
			_, err := os.ReadFile(path)
			return err
		}
		return nil
	})
}

// requireDjango skips without Django, or fails under CI=true.
func requireDjango(t *testing.T, modules ...string) {
	t.Helper()
	imports := append([]string{"django", "waffle"}, modules...)
	err := exec.Command(python, "-c", "import "+strings.Join(imports, ", ")).Run()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s cannot import %v: %v (apt-get install python3-django python3-django-waffle python3-psycopg2 gunicorn)", python, imports, err)
	}
	t.Skipf("Django not installed (%v): %v", imports, err)
}

func requireCommand(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s is not installed", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("FLAGPROXY_TEST_POSTGRES_DSN")
	if dsn == "" || dsn == "skip" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but FLAGPROXY_TEST_POSTGRES_DSN is not set")
		}
		t.Skip("set FLAGPROXY_TEST_POSTGRES_DSN to run the PostgreSQL end-to-end tests")
	}
	return dsn
}

// eachSite runs f on the test site twice, in parallel: on SQLite under
// runserver and on PostgreSQL under gunicorn, each database fresh and
// migrated. The caller must not do anything after it that needs f to have
// run: parallel subtests run once the calling test function returns.
func eachSite(t *testing.T, f func(t *testing.T, db *siteDB, server string)) {
	for _, c := range []struct {
		name, server string
		newDB        func(*testing.T) *siteDB
	}{
		{"sqlite-runserver", "runserver", newSQLiteSite},
		{"postgres-gunicorn", "gunicorn", newPostgresSite},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Each site has its own database, ports and processes.
			t.Parallel()
			requireDjango(t, "psycopg2")
			f(t, c.newDB(t), c.server)
		})
	}
}

// settingsFile writes a --django-settings file for the test site: its
// SECRET_KEY, USE_TZ, TIME_ZONE and Django version, plus extra JSON members.
func settingsFile(t *testing.T, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "settings.json")
	body := `{"SECRET_KEY": "` + testSecretKey + `", "USE_TZ": true, "TIME_ZONE": "UTC", "DJANGO_VERSION": "3.2"` + extra + `}`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// siteDB is a database migrated by the Django test site.
type siteDB struct {
	URL string // dj-database-url form, for Django and flagproxy
	DB  *sql.DB
	// Rebind turns ? placeholders into the dialect's.
	Rebind func(string) string
}

func (s *siteDB) Exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := s.DB.Exec(s.Rebind(q), args...); err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
}

func newSQLiteSite(t *testing.T) *siteDB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "site.sqlite3")
	u := "sqlite:///" + path
	manage(t, u, "migrate", "--noinput", "-v", "0")
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return &siteDB{URL: u, DB: db, Rebind: func(q string) string { return q }}
}

func newPostgresSite(t *testing.T) *siteDB {
	t.Helper()
	dsn := postgresDSN(t)
	admin, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	rand.Read(b[:])
	name := "flagproxy_e2e_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	manage(t, u.String(), "migrate", "--noinput", "-v", "0")
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rebind := func(q string) string {
		var out strings.Builder
		n := 0
		for _, r := range q {
			if r == '?' {
				n++
				fmt.Fprintf(&out, "$%d", n)
				continue
			}
			out.WriteRune(r)
		}
		return out.String()
	}
	return &siteDB{URL: u.String(), DB: db, Rebind: rebind}
}

// manage runs the test site's manage.py against a database.
func manage(t *testing.T, dbURL string, args ...string) string {
	t.Helper()
	return manageEnv(t, dbURL, nil, args...)
}

// manageEnv runs manage.py with extra environment variables.
func manageEnv(t *testing.T, dbURL string, env []string, args ...string) string {
	t.Helper()
	out, err := manageCmd(dbURL, env, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("manage.py %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// manageCmd is the command of manage.py with args against a database, for
// a test that also looks at a failing command's output and status.
func manageCmd(dbURL string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(python, append([]string{"manage.py"}, args...)...)
	cmd.Dir = "django"
	cmd.Env = append(append(os.Environ(), "FLAGPROXY_DJANGO_DATABASE="+dbURL, "PYTHONDONTWRITEBYTECODE=1"), env...)
	return cmd
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process is a child process whose output is kept for failure reports.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, name, dir string, env []string, prog string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	p := &process{name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.out.String())
		}
	})
	return p
}

// django starts the test site with runserver or gunicorn, with extra
// environment variables (such as FLAGPROXY_DJANGO_SETTINGS) if given.
func django(t *testing.T, server, dbURL string, extraEnv ...string) string {
	t.Helper()
	addr := freeAddr(t)
	env := append([]string{"FLAGPROXY_DJANGO_DATABASE=" + dbURL, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"}, extraEnv...)
	switch server {
	case "gunicorn":
		requireCommand(t, "gunicorn")
		start(t, "gunicorn", "django", env, python, "-m", "gunicorn", "--bind", addr, "--workers", "2", "testsite.wsgi")
	default:
		start(t, "runserver", "django", env, python, "manage.py", "runserver", "--noreload", addr)
	}
	waitHTTP(t, "http://"+addr+"/echo/", 200, 30*time.Second)
	return "http://" + addr
}

// flagproxy starts the binary in front of upstream and waits until ready.
func flagproxy(t *testing.T, upstream, dbURL string, extra ...string) (proxyURL, adminURL string) {
	t.Helper()
	listen, admin := freeAddr(t), freeAddr(t)
	args := append([]string{"serve", "--listen", listen, "--admin-listen", admin, "--upstream", upstream, "--database", dbURL}, extra...)
	start(t, "flagproxy", ".", nil, flagproxyBinary(t), args...)
	waitHTTP(t, "http://"+admin+"/readyz", 200, 15*time.Second)
	return "http://" + listen, "http://" + admin
}

func waitHTTP(t *testing.T, u string, code int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == code {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within %v (last error %v)", u, code, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// echo is what the test site's echo view returns.
type echo struct {
	Path    string            `json:"path"`
	Method  string            `json:"method"`
	Meta    map[string]string `json:"meta"`
	Headers map[string]string `json:"headers"`
	User    struct {
		ID            string `json:"id"`
		Authenticated bool   `json:"authenticated"`
	} `json:"user"`
}

// flags is the decoded X-Flagproxy-Flags value (inline form).
type flags struct {
	Flags     map[string]bool     `json:"flags"`
	Switches  map[string]bool     `json:"switches"`
	Samples   map[string]bool     `json:"samples"`
	Sources   map[string]string   `json:"sources"`
	Conflicts map[string][]string `json:"conflicts"`
	Version   string              `json:"version"`
	State     string              `json:"state"`
}

// rawGet sends a request with headers written byte for byte, so names
// like X_Flagproxy_Flags reach the proxy as the client spelled them.
func rawGet(t *testing.T, base, path string, headerLines ...string) echo {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nConnection: close\r\n"
	for _, h := range headerLines {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	var e echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("echo body %q: %v", body, err)
	}
	return e
}

func decodeFlags(t *testing.T, e echo) flags {
	t.Helper()
	raw, ok := e.Meta["HTTP_X_FLAGPROXY_FLAGS"]
	if !ok {
		t.Fatalf("Django saw no X-Flagproxy-Flags header: %+v", e.Meta)
	}
	var f flags
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		t.Fatalf("flags header %q: %v", raw, err)
	}
	return f
}
