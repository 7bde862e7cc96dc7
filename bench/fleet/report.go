package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// cellResult is one fleet: a mode and a size.
type cellResult struct {
	Mode            string // notify, poll, replica, replica-poll, none (the baseline)
	Server          string // the server the proxies read: primary or standby
	N               int
	Skipped         string
	FreeBefore      int // free connections on the server before starting
	ReadySeconds    float64
	NotifyActive    int // proxies reporting flagproxy_snapshot_notify_active 1 after start
	NotifyActiveEnd int // and at the end
	Idle, Changes   windowResult
	Delay           delayResult
	Warnings        []string
}

// label names the cell's mode, and for a baseline its server.
func (c cellResult) label() string {
	if c.Mode == "none" {
		return "none (" + c.Server + ")"
	}
	return c.Mode
}

func (c cellResult) summary() string {
	if c.Skipped != "" && c.Idle.Seconds == 0 {
		return fmt.Sprintf("%s N=%d: skipped: %s", c.label(), c.N, c.Skipped)
	}
	s := fmt.Sprintf("%s N=%d: idle %.0f stmt/s, %d conns; changing %.0f stmt/s", c.label(), c.N,
		rate(c.Idle.Wire.Statements(), c.Idle.Seconds), c.Idle.ConnsMax, rate(c.Changes.Wire.Statements(), c.Changes.Seconds))
	if len(c.Delay.LastLog) > 0 {
		s += fmt.Sprintf("; last proxy p50 %s p99 %s (log)", ms(pct(c.Delay.LastLog, 0.5)), ms(pct(c.Delay.LastLog, 0.99)))
	}
	if c.Skipped != "" {
		s += "; stopped: " + c.Skipped
	}
	return s
}

// report is everything printed at the end.
type report struct {
	opts          options
	started       time.Time
	finished      time.Time
	site          map[string]int
	server        string
	serverKind    string
	dbName        string
	cpus          int
	goVersion     string
	commit        string
	localServer   bool
	triggerTables []string
	cells         []cellResult
}

func rate(n int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}

// pct is the nearest-rank percentile p of v.
func pct(v []time.Duration, p float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	if f < 10 {
		return fmt.Sprintf("%.1f ms", f)
	}
	return fmt.Sprintf("%.0f ms", f)
}

func num(f float64) string {
	switch {
	case f == 0:
		return "0"
	case math.Abs(f) < 10:
		return fmt.Sprintf("%.2f", f)
	case math.Abs(f) < 100:
		return fmt.Sprintf("%.1f", f)
	}
	return fmt.Sprintf("%.0f", f)
}

// txRate is the window's transactions a second, the harness's own writes
// left out.
func (w windowResult) txRate() float64 {
	return rate(w.Stats.XactCommit+w.Stats.XactRollback-w.WritesHere, w.Seconds)
}

func (r *report) baseline(phase, server string) (windowResult, bool) {
	for _, c := range r.cells {
		if c.Mode == "none" && c.Server == server {
			if phase == "idle" {
				return c.Idle, true
			}
			return c.Changes, true
		}
	}
	return windowResult{}, false
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	o := r.opts
	p("# flagproxy fleet simulation\n\n")
	p("`go run ./bench/fleet %s` — %s, %s.\n\n", strings.Join(os.Args[1:], " "),
		r.started.Format("2006-01-02 15:04 MST"), r.finished.Sub(r.started).Round(time.Second))
	p("- Machine: %d CPUs, %s; flagproxy %s.\n", r.cpus, r.goVersion, r.commit)
	kind := "shared server of -postgres-dsn, throwaway database " + r.dbName
	if r.serverKind == "private" {
		kind = "private throwaway cluster (-server private, a hot standby of it for replica modes), database " + r.dbName
	}
	p("- Database: %s; %s.", r.server, kind)
	if !r.localServer {
		p(" Backend CPU not measured (the server is not a process of this machine).")
	}
	p("\n- Site: %d waffle flags, %d user links, %d group links, %d switches, %d samples, %d users, %d groups (Django schema of djangodb/testdata/schema/postgres.sql).\n",
		r.site["waffle_flag"], r.site["waffle_flag_users"], r.site["waffle_flag_groups"], r.site["waffle_switch"],
		r.site["waffle_sample"], r.site["auth_user"], r.site["auth_group"])
	poll := "flagproxy's default (1s on PostgreSQL)"
	if o.pollInterval != "" {
		poll = o.pollInterval
	}
	full := "flagproxy's default (30s)"
	if o.fullReload != "" {
		full = o.fullReload
	}
	p("- Proxies: GOMAXPROCS=1 each, started at random moments within one poll interval (as unrelated pods would be, so their poll timers have unrelated phases), "+
		"--poll-interval %s, --full-reload-interval %s, one in-process upstream; "+
		"notify: triggers of notify.py installed (%s), --notify=true; poll: no triggers, --notify=false; "+
		"replica, replica-poll: the proxies read a hot standby (streaming replication) of the private cluster while the harness writes to the primary, which has the triggers, with --notify=true or false; replica-split: --database the standby, --notify-database the primary. "+
		"Figures of replica modes (and of the \"none (standby)\" baseline) are the standby's.\n",
		poll, full, strings.Join(r.triggerTables, ", "))
	p("- Windows of %v idle, then %v with `%s` updated %s times a second; %d measured changes per fleet, %v–%v apart.\n\n",
		o.window, o.window, changeFlag, num(o.rate), o.changes, o.gapMin, o.gapMax)

	p("## Database load\n\n")
	p("tx/s: pg_stat_database xact_commit + xact_rollback of the database, the harness's own updates left out. " +
		"stmt/s: statements the proxies sent, counted on the wire (simple queries including BEGIN/COMMIT and pings, and extended-protocol executions). " +
		"tup/s: tup_returned. Backend CPU: utime+stime of the database's backends. conns: client backends of the database " +
		"(pg_stat_activity, median / max of one look a second; LISTEN: of them, whose last query was LISTEN). " +
		"Proxy CPU and RSS: per proxy. busy: all CPUs of the machine (other work included), load: 1-minute load average at the start.\n\n")
	p("| mode | N | phase | conns | LISTEN | tx/s | stmt/s | tup/s | backend CPU ms/s | KB/s from PG | loads/s | proxy CPU ms/s | proxy RSS MB | busy | load |\n")
	p("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range r.cells {
		if c.Idle.Seconds == 0 {
			p("| %s | %d | — | skipped: %s |||||||||||||\n", c.label(), c.N, oneLine(c.Skipped))
			continue
		}
		for _, w := range []windowResult{c.Idle, c.Changes} {
			if w.Seconds == 0 {
				continue
			}
			cpu := "n/a"
			if r.localServer {
				cpu = num(1000 * w.BackendCPU / w.Seconds)
			}
			proxyCPU, rss, loads := "—", "—", "—"
			if c.N > 0 {
				proxyCPU = num(1000 * w.ProxyCPU / w.Seconds / float64(c.N))
				rss = num(float64(w.ProxyRSS) / (1 << 20))
				loads = num(w.Loads / w.Seconds)
			}
			p("| %s | %d | %s | %d / %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %.0f %% | %s |\n",
				c.label(), c.N, w.Phase, w.ConnsMedian, w.ConnsMax, w.ListenMedian, num(w.txRate()),
				num(rate(w.Wire.Statements(), w.Seconds)), num(rate(w.Stats.TupReturned, w.Seconds)), cpu,
				num(rate(w.Wire.ToClient, w.Seconds)/1024), loads, proxyCPU, rss, 100*w.MachineBusy, w.Load1)
		}
	}

	p("\n## Per proxy\n\n")
	p("The fleet's figures minus the baseline's (no proxy), divided by N. stmt/s and KB/s are the proxies' own (on the wire), so nothing is subtracted from them.\n\n")
	p("| mode | N | phase | conns | tx/s | stmt/s | of which pings | tup/s | backend CPU ms/s | KB/s from PG | loads/s |\n")
	p("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range r.cells {
		if c.N == 0 || c.Idle.Seconds == 0 {
			continue
		}
		for _, w := range []windowResult{c.Idle, c.Changes} {
			if w.Seconds == 0 {
				continue
			}
			base, _ := r.baseline(w.Phase, c.Server)
			n := float64(c.N)
			tx := (w.txRate() - base.txRate()) / n
			tup := (rate(w.Stats.TupReturned, w.Seconds) - rate(base.Stats.TupReturned, base.Seconds)) / n
			cpu := "n/a"
			if r.localServer {
				cpu = num(1000 * (w.BackendCPU/w.Seconds - safeDiv(base.BackendCPU, base.Seconds)) / n)
			}
			p("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.label(), c.N, w.Phase,
				num(float64(w.ConnsMedian)/n), num(tx), num(rate(w.Wire.Statements(), w.Seconds)/n),
				num(rate(w.Wire.Empty, w.Seconds)/n), num(tup), cpu,
				num(rate(w.Wire.ToClient, w.Seconds)/1024/n), num(w.Loads/w.Seconds/n))
		}
	}

	p("\n## Change to header\n\n")
	p("Each change is one UPDATE of `%s`, committed; the clock starts before it is sent. "+
		"header: every proxy is asked through its listener (the upstream answers with the version its X-Flagproxy-Flags carried), "+
		"first as soon as the commit returns, then after 5 ms and at intervals growing by a quarter up to 50 ms, until it shows a version never seen before; "+
		"the time is when that answer arrived. log: the time in the proxy's own \"snapshot loaded\" line, written right after the new snapshot is published "+
		"(no probing resolution). last: the last proxy of the fleet; median: the median proxy. p50 and p99 are nearest-rank over the changes "+
		"(with fewer than 100 changes p99 is the slowest one). With -probe log the proxies are not asked at all (no probing load), and only the log columns are filled.\n\n", changeFlag)
	p("| mode | N | changes | last, header p50 / p99 | median, header p50 / p99 | last, log p50 / p99 | median, log p50 / p99 | missed | probes a change | commit p50 |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range r.cells {
		d := c.Delay
		if c.N == 0 || len(d.LastLog) == 0 {
			continue
		}
		k := len(d.LastLog)
		lastH, medH, probes := "—", "—", "none"
		if len(d.LastHeader) > 0 {
			lastH = ms(pct(d.LastHeader, .5)) + " / " + ms(pct(d.LastHeader, .99))
			medH = ms(pct(d.MedianHeader, .5)) + " / " + ms(pct(d.MedianHeader, .99))
			probes = fmt.Sprintf("%.0f", float64(d.Probes)/float64(k))
		}
		p("| %s | %d | %d | %s | %s | %s / %s | %s / %s | %d | %s | %s |\n", c.label(), c.N, k, lastH, medH,
			ms(pct(d.LastLog, .5)), ms(pct(d.LastLog, .99)), ms(pct(d.MedianLog, .5)), ms(pct(d.MedianLog, .99)),
			d.Missed, probes, ms(pct(d.Commit, .5)))
	}

	p("\n## Notes of the run\n\n")
	noted := false
	for _, c := range r.cells {
		var notes []string
		if c.N > 0 && c.Idle.Seconds > 0 {
			notes = append(notes, fmt.Sprintf("ready in %.1f s; %d free connections before start, %d at least during the windows; other users' connections up to %d",
				c.ReadySeconds, c.FreeBefore, min(c.Idle.FreeMin, c.Changes.FreeMin), max(c.Idle.OthersMax, c.Changes.OthersMax)))
			if modeSpecs[c.Mode].notify {
				notes = append(notes, fmt.Sprintf("notifications active on %d of %d proxies after start, %d at the end", c.NotifyActive, c.N, c.NotifyActiveEnd))
			}
			notes = append(notes, fmt.Sprintf("wire, idle: %d statements, %d pings, %d BEGIN/COMMIT, %d extended executions, %d new connections; changing: %d statements, %d pings, %d new connections",
				c.Idle.Wire.Statements(), c.Idle.Wire.Empty, c.Idle.Wire.TxControl, c.Idle.Wire.Execute, c.Idle.Wire.Connects,
				c.Changes.Wire.Statements(), c.Changes.Wire.Empty, c.Changes.Wire.Connects))
			notes = append(notes, fmt.Sprintf("flagproxy metrics, idle: %.0f change checks, %.0f loads; changing: %.0f checks, %.0f loads, %.0f notifications received; the harness wrote %d changes",
				c.Idle.Checks, c.Idle.Loads, c.Changes.Checks, c.Changes.Loads, c.Changes.Notifications, c.Changes.Writes))
		}
		if c.Delay.Inconsistent > 0 {
			notes = append(notes, fmt.Sprintf("%d changes after which proxies showed different versions", c.Delay.Inconsistent))
		}
		if c.Skipped != "" {
			notes = append(notes, "not measured: "+oneLine(c.Skipped))
		}
		for _, w := range c.Warnings {
			notes = append(notes, "proxy log: "+oneLine(w))
		}
		if len(notes) == 0 {
			continue
		}
		noted = true
		p("- **%s, N=%d**: %s.\n", c.label(), c.N, strings.Join(notes, "; "))
	}
	if !noted {
		p("None.\n")
	}
	return b.String()
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}
