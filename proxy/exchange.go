package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// exchange is one proxied request's state, shared by the steps that
// ReverseProxy calls separately: it is the ResponseWriter the handler
// writes to (recording the status code for the metrics), carries the
// cookies rewrite decided to ModifyResponse, and bounds how long the
// client may take to read a buffered response.
type exchange struct {
	http.ResponseWriter
	ctx     exchangeContext
	code    int
	snap    *engine.Snapshot // the request was decided on; nil: none
	cookies responseCookies
	exposed *exposed // the decisions to log as exposures; nil: none
	// sendTimeout, once bufferResponse has buffered the response, is how
	// long one write to the client may take (nginx's send_timeout): a
	// client that stops reading then frees its buffer file.
	sendTimeout time.Duration
	deadline    bool // a write deadline was set on the connection
	// req is the request with the exchange in its context, kept here to
	// save an allocation a request.
	req http.Request
}

type exchangeKey struct{}

// newExchange wraps w and records the exchange in r's context.
func newExchange(w http.ResponseWriter, r *http.Request) (*exchange, *http.Request) {
	ex := &exchange{ResponseWriter: w}
	ex.ctx = exchangeContext{Context: r.Context(), ex: ex}
	// WithContext's copy does not escape: the compiler keeps it on the
	// stack, and only ex is allocated.
	ex.req = *r.WithContext(&ex.ctx)
	return ex, &ex.req
}

// exchangeContext is the request's context with the exchange as the value
// of exchangeKey: context.WithValue's, kept inside the exchange to save
// an allocation a request.
type exchangeContext struct {
	context.Context
	ex *exchange
}

func (c *exchangeContext) Value(key any) any {
	if key == (exchangeKey{}) {
		return c.ex
	}
	return c.Context.Value(key)
}

// exchangeOf returns the exchange of a request (inbound or outbound).
func exchangeOf(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// writeDeadliner is what net/http's ResponseWriter offers (as
// http.ResponseController uses it) to bound one write.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

func (ex *exchange) WriteHeader(code int) {
	if ex.code == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		ex.code = code
	}
	ex.ResponseWriter.WriteHeader(code)
}

func (ex *exchange) Write(b []byte) (int, error) {
	if ex.code == 0 {
		ex.code = http.StatusOK
	}
	if ex.sendTimeout > 0 {
		if d, ok := ex.ResponseWriter.(writeDeadliner); ok && d.SetWriteDeadline(time.Now().Add(ex.sendTimeout)) == nil {
			ex.deadline = true
		}
	}
	return ex.ResponseWriter.Write(b)
}

// done clears a write deadline, which would otherwise outlive the request
// on a kept-alive connection.
func (ex *exchange) done() {
	if ex.deadline {
		_ = ex.ResponseWriter.(writeDeadliner).SetWriteDeadline(time.Time{})
	}
}

// Unwrap lets http.ResponseController (with which ReverseProxy flushes
// server-sent events and hijacks upgrades) reach the underlying writer.
func (ex *exchange) Unwrap() http.ResponseWriter { return ex.ResponseWriter }
