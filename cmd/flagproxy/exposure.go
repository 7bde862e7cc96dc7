package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/proxy"
)

// exposureOptions are the --exposure-* options.
type exposureOptions struct {
	Flags   string
	Log     string
	Dedup   time.Duration
	Entries int
	Queue   int
	Key     string
}

// define defines the options on fs.
func (o *exposureOptions) define(fs *flag.FlagSet) {
	fs.StringVar(&o.Flags, "exposure-flags", "", "comma-separated `patterns` (globs as --browser-flags) of the flags, switches and samples whose decisions are logged as exposure events (default: none, no events)")
	fs.StringVar(&o.Log, "exposure-log", "-", "where exposure events go, one JSON line each: - (standard output), a file `path` (appended to; reopened on SIGHUP), unix:///path.sock or unixgram:///path.sock")
	fs.DurationVar(&o.Dedup, "exposure-dedup", proxy.DefaultExposureDedup, "log a visitor's decision of a name once per this window, aligned to UTC (24h: once a day); 0 logs every decision")
	fs.IntVar(&o.Entries, "exposure-dedup-entries", proxy.DefaultExposureEntries, "visitor, name and value triples remembered for --exposure-dedup (about 100 bytes each); the least recently seen go first")
	fs.IntVar(&o.Queue, "exposure-queue", proxy.DefaultExposureQueue, "exposure events waiting for the log; beyond this they are dropped and counted")
	fs.StringVar(&o.Key, "exposure-key", "", "secret (16 bytes or more) keying the hash of session cookies into visitor ids; the same on every replica (default: random at each start)")
}

// validate checks the exposure options.
func (o *exposureOptions) validate() []error {
	var errs []error
	if o.Flags == "" {
		// Log is "" for the commands without these options.
		if o.Log != "-" && o.Log != "" {
			errs = append(errs, errors.New("--exposure-log needs --exposure-flags"))
		}
		return errs
	}
	if err := proxy.CheckPatterns(splitList(o.Flags)); err != nil {
		errs = append(errs, fmt.Errorf("--exposure-flags: %v", err))
	}
	if err := proxy.CheckExposureLog(o.Log); err != nil {
		errs = append(errs, fmt.Errorf("--exposure-log: %v", err))
	}
	if o.Dedup < 0 {
		errs = append(errs, errors.New("--exposure-dedup must not be negative (0 logs every decision)"))
	}
	if o.Entries <= 0 || o.Queue <= 0 {
		errs = append(errs, errors.New("--exposure-dedup-entries and --exposure-queue must be positive"))
	}
	if o.Key != "" && len(o.Key) < 16 {
		errs = append(errs, fmt.Errorf("--exposure-key is %d bytes; at least 16 are needed", len(o.Key)))
	}
	return errs
}

// newExposure builds the exposure recorder, or nil without
// --exposure-flags.
func newExposure(c *Config, log *slog.Logger, reg prometheus.Registerer) (*proxy.Exposure, error) {
	o := c.exposure
	if o.Flags == "" {
		return nil, nil
	}
	cfg := proxy.ExposureConfig{Patterns: splitList(o.Flags), Sink: o.Log, Dedup: o.Dedup, Entries: o.Entries,
		Queue: o.Queue, SessionCookie: c.django.SessionCookieName, Logger: log, Registerer: reg}
	if cfg.Dedup == 0 {
		cfg.Dedup = -1 // every decision
	}
	if o.Key != "" {
		cfg.VisitorKey = []byte(o.Key)
	} else {
		log.Info("no --exposure-key: visitor ids of the exposure log change when flagproxy restarts, and differ between replicas")
	}
	return proxy.NewExposure(cfg)
}

// reopenOnHangup calls e.Reopen on every SIGHUP until ctx ends, as
// logrotate's postrotate "kill -HUP" expects.
func reopenOnHangup(ctx context.Context, e *proxy.Exposure) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				e.Reopen()
			}
		}
	}()
}
