package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"syscall"
)

// StatusClientClosedRequest is the status logged and counted when the
// client went away before the upstream answered (nginx's and Caddy's 499).
const StatusClientClosedRequest = 499

// classify maps an upstream error to a status code and an error reason:
// 499 when the client's request was canceled, 504 on a timeout, 502
// otherwise.
func classify(r *http.Request, err error) (status int, reason string) {
	var ne net.Error
	switch {
	case errors.Is(r.Context().Err(), context.Canceled) ||
		errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return StatusClientClosedRequest, reasonCanceled
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout, reasonTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return http.StatusBadGateway, reasonRefused
	}
	return http.StatusBadGateway, reasonOther
}

// errorHandler answers a request the upstream did not answer. The client
// gets the status and its text, never the error; the error is logged with
// the upstream and the status (at debug level when the client went away).
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	status, reason := classify(r, err)
	p.metrics.upstreamErrors.WithLabelValues(reason).Inc()
	level := slog.LevelError
	if status == StatusClientClosedRequest {
		level = slog.LevelDebug
	}
	if level == slog.LevelError && !p.errLog.Allow() {
		// An upstream that is down fails every request: log a few a
		// second, and say how many were not logged.
		p.errSkipped.Add(1)
	} else {
		p.logger.LogAttrs(r.Context(), level, "upstream request failed",
			slog.String("upstream", p.upstream.Redacted()),
			slog.Int("status", status),
			slog.Any("error", err),
			slog.Int64("not_logged_before", p.errSkipped.Swap(0)))
	}
	text := http.StatusText(status)
	if status == StatusClientClosedRequest {
		text = "Client Closed Request"
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text + "\n"))
}
