package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Bounds of the exposure writer.
const (
	// exposureDrainTimeout is how long Run keeps writing queued events
	// once its context ends.
	exposureDrainTimeout = 2 * time.Second
	// sinkWriteTimeout bounds one write to a socket: a reader that stops
	// reading costs queued events, never a request.
	sinkWriteTimeout = 2 * time.Second
	// sinkRetryMin and sinkRetryMax bound the wait before the sink is
	// opened again after a failure (doubling in between).
	sinkRetryMin = 100 * time.Millisecond
	sinkRetryMax = 5 * time.Second
	// sinkBuffer is the buffer of stream sinks (files, stdout, stream
	// sockets), flushed whenever the queue is empty.
	sinkBuffer = 64 << 10
)

// The reasons of flagproxy_exposure_events_dropped_total.
const (
	dropQueueFull  = "queue_full"
	dropWriteError = "write_error"
	dropShutdown   = "shutdown"
)

// sinkTarget is a parsed ExposureConfig.Sink.
type sinkTarget struct {
	network string // "-" (stdout), "file", "unix" or "unixgram"
	path    string
}

// parseSink reads "-", "unix:///path", "unixgram:///path" or a file path.
func parseSink(s string) (sinkTarget, error) {
	switch {
	case s == "":
		return sinkTarget{}, errors.New("missing (want -, a file path, unix:///path or unixgram:///path)")
	case s == "-":
		return sinkTarget{network: "-"}, nil
	}
	for _, network := range []string{"unix", "unixgram"} {
		if p, ok := strings.CutPrefix(s, network+"://"); ok {
			if !filepath.IsAbs(p) {
				return sinkTarget{}, fmt.Errorf("%q: want %s:///absolute/path", s, network)
			}
			return sinkTarget{network: network, path: p}, nil
		}
	}
	if strings.Contains(s, "://") {
		return sinkTarget{}, fmt.Errorf("%q: unknown scheme (want -, a file path, unix:///path or unixgram:///path)", s)
	}
	return sinkTarget{network: "file", path: s}, nil
}

// CheckExposureLog reports whether s can be ExposureConfig.Sink.
func CheckExposureLog(s string) error {
	_, err := parseSink(s)
	return err
}

// exposureWriter owns the sink. Requests hand it events through a bounded
// queue (enqueue never blocks: a full queue drops the event); one
// goroutine (run) encodes and writes them, and reopens the sink after a
// failure, waiting longer after each.
type exposureWriter struct {
	target  sinkTarget
	queue   chan exposureEvent
	reopenC chan struct{}
	stdout  io.Writer
	logger  *slog.Logger
	events  prometheus.Counter
	dropped *prometheus.CounterVec

	// The goroutine's own state.
	out      io.WriteCloser // nil while closed
	conn     net.Conn       // out, when it is a socket
	bw       *bufio.Writer  // nil for datagrams
	buffered int            // events in bw
	line     bytes.Buffer
	enc      *json.Encoder
	retryAt  time.Time
	backoff  time.Duration
	failing  bool
}

func newExposureWriter(t sinkTarget, queue int, logger *slog.Logger, reg prometheus.Registerer) (*exposureWriter, error) {
	w := &exposureWriter{target: t, queue: make(chan exposureEvent, queue), reopenC: make(chan struct{}, 1),
		stdout: os.Stdout, logger: logger,
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flagproxy_exposure_events_total",
			Help: "Exposure events written to the exposure log.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagproxy_exposure_events_dropped_total",
			Help: "Exposure events lost, by reason: queue_full (the sink was slower than the requests), write_error, shutdown (still queued when flagproxy stopped).",
		}, []string{"reason"}),
	}
	for _, r := range [...]string{dropQueueFull, dropWriteError, dropShutdown} {
		w.dropped.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{w.events, w.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
	}
	w.enc = json.NewEncoder(&w.line)
	w.enc.SetEscapeHTML(false)
	return w, nil
}

// enqueue hands ev to the writer, or drops it when the queue is full.
func (w *exposureWriter) enqueue(ev exposureEvent) {
	select {
	case w.queue <- ev:
	default:
		w.dropped.WithLabelValues(dropQueueFull).Inc()
	}
}

// reopen asks the writer to close the sink; the next event opens it.
func (w *exposureWriter) reopen() {
	select {
	case w.reopenC <- struct{}{}:
	default:
	}
}

func (w *exposureWriter) run(ctx context.Context) error {
	defer w.close()
	for {
		// A reopen asked for before an event was queued comes first.
		select {
		case <-w.reopenC:
			w.flush()
			w.close()
		default:
		}
		select {
		case <-ctx.Done():
			w.drain()
			return nil
		case <-w.reopenC:
			w.flush()
			w.close()
		case ev := <-w.queue:
			w.write(ctx, ev)
		}
	}
}

// drain writes what is queued, for up to exposureDrainTimeout.
func (w *exposureWriter) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), exposureDrainTimeout)
	defer cancel()
	for {
		select {
		case ev := <-w.queue:
			if !w.write(ctx, ev) {
				w.dropped.WithLabelValues(dropShutdown).Add(float64(len(w.queue)))
				return
			}
		default:
			w.flush()
			return
		}
	}
}

// write writes ev, opening the sink first if need be. It reports false
// when ctx ended before the sink could be opened (ev is counted dropped).
func (w *exposureWriter) write(ctx context.Context, ev exposureEvent) bool {
	if !w.open(ctx) {
		w.dropped.WithLabelValues(dropShutdown).Inc()
		return false
	}
	line := w.encode(ev)
	w.deadline()
	if w.bw == nil {
		// A datagram is one event, without the newline.
		if _, err := w.out.Write(line[:len(line)-1]); err != nil {
			w.fail(err, 1)
			return true
		}
		w.events.Inc()
		return true
	}
	w.buffered++
	if _, err := w.bw.Write(line); err != nil {
		w.fail(err, w.buffered)
		return true
	}
	if len(w.queue) == 0 {
		w.flush()
	}
	return true
}

// encode returns ev's JSON line, valid until the next call.
func (w *exposureWriter) encode(ev exposureEvent) []byte {
	w.line.Reset()
	_ = w.enc.Encode(lineOf(ev)) // strings and numbers only: cannot fail
	return w.line.Bytes()
}

// flush writes the buffered events out.
func (w *exposureWriter) flush() {
	if w.bw == nil || w.buffered == 0 {
		return
	}
	w.deadline()
	if err := w.bw.Flush(); err != nil {
		w.fail(err, w.buffered)
		return
	}
	w.events.Add(float64(w.buffered))
	w.buffered = 0
}

func (w *exposureWriter) deadline() {
	if w.conn != nil {
		_ = w.conn.SetWriteDeadline(time.Now().Add(sinkWriteTimeout))
	}
}

// open opens the sink unless it is open, waiting out the retry delay of a
// failure; false when ctx ended first.
func (w *exposureWriter) open(ctx context.Context) bool {
	for w.out == nil {
		if wait := time.Until(w.retryAt); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
		}
		if err := w.dial(); err != nil {
			w.fail(err, 0)
			continue
		}
		if w.failing {
			w.logger.Info("exposure log writable again", "exposure_log", w.target.network+":"+w.target.path)
		}
		w.failing, w.backoff = false, 0
	}
	return true
}

// dial opens the target.
func (w *exposureWriter) dial() error {
	switch w.target.network {
	case "-":
		w.out = nopCloser{w.stdout}
	case "file":
		f, err := os.OpenFile(w.target.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return err
		}
		w.out = f
	default:
		c, err := net.DialTimeout(w.target.network, w.target.path, sinkWriteTimeout)
		if err != nil {
			return err
		}
		w.out, w.conn = c, c
	}
	if w.target.network != "unixgram" {
		w.bw = bufio.NewWriterSize(w.out, sinkBuffer)
	}
	return nil
}

// fail closes the sink after err, counts lost events as dropped, and
// sets when to try again. The first failure of a run is logged.
func (w *exposureWriter) fail(err error, lost int) {
	if lost > 0 {
		w.dropped.WithLabelValues(dropWriteError).Add(float64(lost))
	}
	w.buffered = 0
	w.close()
	w.backoff = min(max(2*w.backoff, sinkRetryMin), sinkRetryMax)
	w.retryAt = time.Now().Add(w.backoff)
	if !w.failing {
		w.failing = true
		w.logger.Warn("exposure log not writable; events wait in the queue (and are dropped when it is full) until it is",
			"exposure_log", w.target.network+":"+w.target.path, "error", err)
	}
}

// close closes the sink, dropping what is buffered.
func (w *exposureWriter) close() {
	if w.out != nil {
		_ = w.out.Close()
	}
	w.out, w.conn, w.bw = nil, nil, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// exposureLine is the JSON form of an event (schema_version 1), one line
// each; README.md "Exposure events" documents it. A null user_id means an
// anonymous visitor; a null visitor_id, one without a session cookie (or
// an authenticated one, known by user_id).
type exposureLine struct {
	SchemaVersion   int     `json:"schema_version"`
	Time            string  `json:"time"`
	Kind            string  `json:"kind"`
	Flag            string  `json:"flag"`
	Value           bool    `json:"value"`
	Reason          string  `json:"reason"`
	UserID          *string `json:"user_id"`
	VisitorID       *string `json:"visitor_id"`
	SnapshotVersion string  `json:"snapshot_version"`
	Path            string  `json:"path"`
	Status          int     `json:"status"`
}

// exposureTime is the format of exposureLine.Time: RFC 3339, UTC, in
// milliseconds.
const exposureTime = "2006-01-02T15:04:05.000Z"

func lineOf(ev exposureEvent) exposureLine {
	l := exposureLine{SchemaVersion: ExposureSchemaVersion, Time: ev.time.UTC().Format(exposureTime),
		Kind: ev.kind.String(), Flag: ev.name, Value: ev.decision.On, Reason: ev.decision.Reason.String(),
		SnapshotVersion: ev.snapshot, Path: ev.path, Status: ev.status}
	if ev.userID != "" {
		l.UserID = &ev.userID
	}
	if ev.visitorID != "" {
		l.VisitorID = &ev.visitorID
	}
	return l
}
