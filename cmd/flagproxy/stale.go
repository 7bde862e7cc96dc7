package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
	"github.com/flagproxy/flagproxy/proxy"
)

// exitFindings is `flagproxy stale`'s exit status when --fail-on-stale or
// --fail-on-missing finds something (1 stays a runtime failure, 2 a usage
// error).
const exitFindings = 3

// staleOptions are `flagproxy stale`'s own options, beside the serve
// options (which say where the database is). They have no environment
// variables.
type staleOptions struct {
	admin         string
	asJSON        bool
	failOnStale   bool
	failOnMissing bool
}

func (o *staleOptions) define(fs *flag.FlagSet) {
	fs.StringVar(&o.admin, "admin-url", "", "ask the flagproxy whose admin listener is at this `URL` (http://127.0.0.1:9090) which names the app read, and since when (default: reads unknown)")
	fs.BoolVar(&o.asJSON, "json", false, "print the report as JSON (the schema is in README.md, \"Stale and missing flags\")")
	fs.BoolVar(&o.failOnStale, "fail-on-stale", false, "exit with status 3 when a flag is stale")
	fs.BoolVar(&o.failOnMissing, "fail-on-missing", false, "exit with status 3 when the app reads a name no source defines")
}

// owns reports whether a flag name is a stale option.
func (o *staleOptions) owns(name string) bool {
	switch name {
	case "admin-url", "json", "fail-on-stale", "fail-on-missing":
		return true
	}
	return false
}

// staleAfter is --stale-after-days as a duration.
func (c *Config) staleAfter() time.Duration {
	return time.Duration(c.StaleAfterDays * float64(24*time.Hour))
}

func staleCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, code := commandConfig("stale", args, getenv, stderr, (*Config).Validate)
	if c == nil {
		return code
	}
	rep, err := staleReport(ctx, c)
	if err != nil {
		fmt.Fprintf(stderr, "flagproxy stale: %v\n", err)
		return 1
	}
	err = writeReport(stdout, c.stale.asJSON, rep, func(w io.Writer) error { return writeStale(w, rep) })
	switch {
	case err != nil:
		return 1
	case c.stale.failOnStale && rep.Stale > 0, c.stale.failOnMissing && len(rep.Missing) > 0:
		return exitFindings
	}
	return 0
}

// staleReport reads the flags from the database (with their modified
// dates) and, with --admin-url, what a running flagproxy knows of reads.
func staleReport(ctx context.Context, c *Config) (proxy.StaleReport, error) {
	var reads proxy.ReadsInfo
	if c.stale.admin != "" {
		var err error
		if reads, err = askReads(ctx, c.stale.admin); err != nil {
			return proxy.StaleReport{}, fmt.Errorf("asking %s: %w", c.stale.admin, err)
		}
	}
	src, snap, err := loadOnce(ctx, c, c.newLogger(io.Discard), prometheus.NewRegistry())
	if err != nil {
		return proxy.StaleReport{}, err
	}
	defer src.Close()
	return proxy.NewStaleReport(snap, reads, time.Now(), c.staleAfter()), nil
}

// adminStatus is the part of /flags.json that says what the app read.
type adminStatus struct {
	Flags    []adminEntry `json:"flags"`
	Switches []adminEntry `json:"switches"`
	Samples  []adminEntry `json:"samples"`
	Stale    struct {
		Reads   proxy.StaleReads    `json:"reads"`
		Missing []proxy.MissingName `json:"missing"`
	} `json:"stale"`
}

type adminEntry struct {
	Kind     engine.Kind `json:"kind"`
	Name     string      `json:"name"`
	LastRead time.Time   `json:"last_read"`
}

// askReads asks a running flagproxy's /flags.json what the app read.
func askReads(ctx context.Context, admin string) (proxy.ReadsInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(admin, "/")+"/flags.json", nil)
	if err != nil {
		return proxy.ReadsInfo{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return proxy.ReadsInfo{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return proxy.ReadsInfo{}, fmt.Errorf("/flags.json: %s", res.Status)
	}
	var st adminStatus
	if err := json.NewDecoder(io.LimitReader(res.Body, 256<<20)).Decode(&st); err != nil {
		return proxy.ReadsInfo{}, fmt.Errorf("reading /flags.json: %w", err)
	}
	type key struct {
		kind engine.Kind
		name string
	}
	last := map[key]time.Time{}
	for _, list := range [][]adminEntry{st.Flags, st.Switches, st.Samples} {
		for _, e := range list {
			last[key{e.Kind, e.Name}] = e.LastRead
		}
	}
	return proxy.ReadsInfo{Since: st.Stale.Reads.Since, Missing: st.Stale.Missing,
		LastRead: func(k engine.Kind, n string) time.Time { return last[key{k, n}] }}, nil
}

// writeStale prints the report as tables.
func writeStale(w io.Writer, rep proxy.StaleReport) error {
	fmt.Fprintf(w, "Stale after %g days; snapshot %s.\n", rep.StaleAfterDays, rep.SnapshotVersion)
	if rep.Reads.Reported {
		fmt.Fprintf(w, "The app has reported the names it reads since %s (%.1f days).\n", rep.Reads.Since.Format(time.DateTime), rep.Reads.WatchingDays)
	} else {
		fmt.Fprintln(w, "Reads unknown: pass --admin-url of a flagproxy whose app runs flagproxy_django (X-Flagproxy-Reads).")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nDecided the same way for everyone (%d)\nKIND\tNAME\tSOURCE\tDECIDED\tMODIFIED (UTC)\tDAYS\tSTALE\n", len(rep.Uniform))
	for _, u := range rep.Uniform {
		modified, days := "unknown", "-"
		if u.Days != nil {
			modified, days = u.Modified.Format(time.DateTime), fmt.Sprintf("%.1f", *u.Days)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Kind, u.Name, u.Source, onOff(u.On), modified, days, staleMark(u.Stale))
	}
	if rep.Reads.Reported {
		fmt.Fprintf(tw, "\nNot read by the app for %g days (%d)\nKIND\tNAME\tSOURCE\tLAST READ (UTC)\tSTALE\n", rep.StaleAfterDays, len(rep.Unread))
		for _, u := range rep.Unread {
			last := "not since reads were reported"
			if !u.LastRead.IsZero() {
				last = u.LastRead.Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Kind, u.Name, u.Source, last, staleMark(u.Stale))
		}
		fmt.Fprintf(tw, "\nRead by the app but defined nowhere (%d)\nKIND\tNAME\tLAST READ (UTC)\n", len(rep.Missing))
		for _, m := range rep.Missing {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Kind, m.Name, m.LastRead.Format(time.DateTime))
		}
	}
	fmt.Fprintf(tw, "\n%d stale, %d missing.\n", rep.Stale, len(rep.Missing))
	return tw.Flush()
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func staleMark(stale bool) string {
	if stale {
		return "stale"
	}
	return ""
}
