package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// clusterPrefix names the temporary directories of private clusters.
const clusterPrefix = "flagproxy-fleet-pg-"

// cluster is a throwaway PostgreSQL cluster of the harness's own (-server
// private): initdb into a temporary directory, trust authentication,
// loopback only, more connections than a default server allows. The shared
// server of FLAGPROXY_TEST_POSTGRES_DSN is never touched in this mode.
type cluster struct {
	bin     string
	cred    *syscall.Credential // the postgres user, when running as root
	dir     string              // the primary's temporary directory, which holds everything
	dataDir string
	port    int
	maxConn int
}

func startCluster(ctx context.Context, maxConns int, logf func(string, ...any)) (*cluster, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and no postgres user to run a private cluster as: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	reapClusters(bin, cred)
	dir, err := os.MkdirTemp("", clusterPrefix)
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, cred: cred, dir: dir, dataDir: filepath.Join(dir, "data"), maxConn: maxConns}
	os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			c.remove()
			return nil, err
		}
	}
	if out, err := c.run("initdb", "-D", c.data(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		c.remove()
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	addr, err := freePort()
	if err != nil {
		c.remove()
		return nil, err
	}
	_, p, _ := net.SplitHostPort(addr)
	c.port, _ = strconv.Atoi(p)
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=%d", c.port, c.dir, maxConns)
	if out, err := c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "postgres.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		c.remove()
		return nil, fmt.Errorf("pg_ctl start: %w\n%s", err, out)
	}
	db, err := sql.Open("postgres", c.dsn())
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = db.PingContext(cctx)
		cancel()
		db.Close()
	}
	if err != nil {
		c.remove()
		return nil, fmt.Errorf("private cluster: %w", err)
	}
	logf("private PostgreSQL cluster in %s on port %d (max_connections %d)", dir, c.port, maxConns)
	return c, nil
}

func (c *cluster) data() string { return c.dataDir }

func (c *cluster) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// stop stops the cluster (immediate shutdown) if it runs.
func (c *cluster) stop() {
	if _, err := os.Stat(filepath.Join(c.data(), "postmaster.pid")); err == nil {
		c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "-t", "30", "stop")
	}
}

// remove stops the cluster and deletes its directory (a standby's data
// is in the primary's directory: stop the standby first).
func (c *cluster) remove() {
	c.stop()
	os.RemoveAll(c.dir)
}

// startStandby makes a hot standby of c by streaming replication
// (pg_basebackup -R) in c's directory, on a port of its own, and waits
// until it accepts read-only connections.
func (c *cluster) startStandby(ctx context.Context, logf func(string, ...any)) (*cluster, error) {
	s := &cluster{bin: c.bin, cred: c.cred, dir: c.dir, dataDir: filepath.Join(c.dir, "standby"), maxConn: c.maxConn}
	if out, err := c.run("pg_basebackup", "-D", s.data(), "-R", "-X", "stream", "-N", "-h", "127.0.0.1",
		"-p", strconv.Itoa(c.port), "-U", "postgres"); err != nil {
		return nil, fmt.Errorf("pg_basebackup: %w\n%s", err, out)
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	_, p, _ := net.SplitHostPort(addr)
	s.port, _ = strconv.Atoi(p)
	// A hot standby needs max_connections at least the primary's.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=%d -c hot_standby=on", s.port, s.dir, s.maxConn)
	if out, err := s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "standby.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		s.stop()
		return nil, fmt.Errorf("pg_ctl start (standby): %w\n%s", err, out)
	}
	db, err := sql.Open("postgres", s.dsn())
	if err != nil {
		s.stop()
		return nil, err
	}
	defer db.Close()
	var recovering bool
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := db.QueryRowContext(cctx, `SELECT pg_is_in_recovery()`).Scan(&recovering); err != nil || !recovering {
		s.stop()
		return nil, fmt.Errorf("the standby is not in recovery (%v)", err)
	}
	logf("hot standby of it on port %d (streaming replication)", s.port)
	return s, nil
}

// run runs one of PostgreSQL's programs as the cluster's user, its output
// in a file (the postmaster must not hold a pipe of ours open).
func (c *cluster) run(prog string, args ...string) (string, error) {
	return runPostgres(c.bin, c.cred, c.dir, prog, args...)
}

func runPostgres(bin string, cred *syscall.Credential, dir, prog string, args ...string) (string, error) {
	out, err := os.CreateTemp("", clusterPrefix+"out-")
	if err != nil {
		return "", err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(filepath.Join(bin, prog), args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return string(b), err
}

// postgresBin finds initdb, pg_ctl and pg_basebackup: next to pg_ctl in
// PATH, else in the newest of Debian's /usr/lib/postgresql/*/bin.
func postgresBin() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		// Debian links the programs into PATH one by one: use the
		// directory of the real pg_ctl, which also holds pg_basebackup.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir))); return n }
	sort.Slice(debian, func(i, j int) bool { return version(debian[i]) > version(debian[j]) })
	for _, dir := range append(dirs, debian...) {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "pg_ctl")) &&
			isExecutable(filepath.Join(dir, "pg_basebackup")) {
			return dir, nil
		}
	}
	return "", errors.New("-server private needs PostgreSQL's initdb, pg_ctl and pg_basebackup (in one directory of PATH or /usr/lib/postgresql/*/bin)")
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// reapClusters stops and removes private clusters of earlier runs whose
// harness process is gone (killed hard: no cleanup ran).
func reapClusters(bin string, cred *syscall.Credential) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), clusterPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) == nil {
			continue // still running (or unreadable): not ours to reap
		}
		data := filepath.Join(dir, "data")
		if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
			runPostgres(bin, cred, dir, "pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop")
		}
		os.RemoveAll(dir)
	}
}
