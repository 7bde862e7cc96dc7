package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/djangodb"
	"github.com/flagproxy/flagproxy/engine"
)

// flagSource is where the flags come from: the site's database, or a
// snapshot file (--database file:///path.json), which has no identities.
type flagSource struct {
	db     *sqlx.DB // nil for a file
	loader djangodb.DataLoader
}

// openSource opens c's database, or names its snapshot file.
func openSource(c *Config, log *slog.Logger, reg prometheus.Registerer) (*flagSource, error) {
	if c.target.Dialect == djangodb.File {
		log.Warn("flags come from a snapshot file, not a database: every visitor is anonymous", "file", c.target.DSN)
		return &flagSource{loader: djangodb.FileLoader{Path: c.target.DSN}}, nil
	}
	db, err := djangodb.Open(c.target)
	if err != nil {
		return nil, err
	}
	lc := c.loader
	lc.Logger, lc.Registerer = log, reg
	loader, err := djangodb.NewLoader(db, c.target.Dialect, lc)
	if err != nil {
		db.Close()
		return nil, err
	}
	if lc.WaffleFlagModel != djangodb.DefaultWaffleFlagModel {
		log.Warn("WAFFLE_FLAG_MODEL is a custom model: flagproxy reads its columns like waffle.Flag's and cannot reproduce methods it overrides",
			"model", lc.WaffleFlagModel)
	}
	return &flagSource{db: db, loader: loader}, nil
}

func (s *flagSource) Close() {
	if s.db != nil {
		s.db.Close()
	}
}

// restoreSnapshot publishes the snapshot persisted in path, if any, as
// stale, so that a proxy started while the database is unreachable serves
// the flags it last had; the first successful load replaces it.
func restoreSnapshot(path string, store *engine.Store, log *slog.Logger) {
	if path == "" {
		return
	}
	snap, loadedAt, err := djangodb.ReadSnapshotFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Info("no persisted snapshot yet", "snapshot_file", path)
	case err != nil:
		log.Error("persisted snapshot refused; starting without it", "snapshot_file", path, "error", err)
	case store.Restore(snap):
		log.Info("serving the persisted snapshot (stale) until the database answers",
			"snapshot_file", path, "snapshot_version", snap.Version(), "loaded_at", loadedAt)
	}
}

// persistingSink writes each snapshot with a new version to a file, after
// publishing it, so that a restart can serve it while the database is
// down.
type persistingSink struct {
	next djangodb.Sink
	path string
	log  *slog.Logger
	last string // version last written
}

func (p *persistingSink) Publish(snap *engine.Snapshot, at time.Time) {
	p.next.Publish(snap, at)
	if snap == nil || snap.Version() == p.last {
		return
	}
	if err := djangodb.WriteSnapshotFile(p.path, snap, at); err != nil {
		p.log.Error("could not persist the snapshot", "snapshot_file", p.path, "error", err)
		return
	}
	p.last = snap.Version()
}

// loadOnce opens the configured flag source and reads one snapshot from
// it, for the commands that answer once (explain, stale). The caller closes
// the source.
func loadOnce(ctx context.Context, c *Config, log *slog.Logger, reg prometheus.Registerer) (*flagSource, *engine.Snapshot, error) {
	src, err := openSource(c, log, reg)
	if err != nil {
		return nil, nil, err
	}
	data, err := src.loader.Load(ctx)
	if err == nil {
		var snap *engine.Snapshot
		if snap, err = engine.NewSnapshot(data); err == nil {
			return src, snap, nil
		}
	}
	src.Close()
	return nil, nil, err
}

// snapshotCommand is "flagproxy snapshot -o FILE": the serve options say
// where the flags are; they are read once and written to FILE.
func snapshotCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, code := commandConfig("snapshot", args, getenv, stderr, func(c *Config) error {
		err := c.Validate()
		if c.Output == "" {
			err = errors.Join(err, errors.New("-o: name the file to write"))
		}
		return err
	})
	if c == nil {
		return code
	}
	log := c.newLogger(stderr)
	src, err := openSource(c, log, prometheus.NewRegistry())
	if err == nil {
		defer src.Close()
		err = writeSnapshot(ctx, src.loader, c.Output)
	}
	if err != nil {
		fmt.Fprintf(stderr, "flagproxy snapshot: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "flagproxy: snapshot written to %s\n", c.Output)
	return 0
}

func writeSnapshot(ctx context.Context, loader djangodb.DataLoader, path string) error {
	data, err := loader.Load(ctx)
	if err != nil {
		return err
	}
	snap, err := engine.NewSnapshot(data)
	if err != nil {
		return err
	}
	return djangodb.WriteSnapshotFile(path, snap, time.Now())
}
