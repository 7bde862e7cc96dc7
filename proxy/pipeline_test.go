package proxy

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// fakeUsers answers UserResolver from a map of primary keys.
type fakeUsers map[string]engine.Subject

func (f fakeUsers) User(_ context.Context, id string) (engine.Subject, error) {
	if id == "boom" {
		return engine.Anonymous, errors.New("database is down")
	}
	if s, ok := f[id]; ok {
		return s, nil
	}
	return engine.Anonymous, nil
}

// djangoFlagsData is a django-flags world: a path condition, a parameter
// condition, a user condition and a condition the library raises on.
func djangoFlagsData() engine.Data {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceDjangoFlags}
	d.FlagStates = []engine.FlagState{
		{Name: "beta_path", Condition: "path matches", Value: "^/beta/"},
		{Name: "param", Condition: "parameter", Value: "enable_param"},
		{Name: "jane_only", Condition: "user", Value: "jane"},
		{Name: "broken", Condition: "boolean", Value: "maybe"},
	}
	return d
}

// TestPipelineDecidesForCallersWithoutARequest asks the pipeline for a user
// and a URL, as explain and OFREP will: the user's subject comes from the
// UserResolver, the path and query from the URL, and the header value is
// returned rather than read back from a request.
func TestPipelineDecidesForCallersWithoutARequest(t *testing.T) {
	jane := engine.Subject{UserID: "7", Username: "jane", Authenticated: true, Active: true}
	hs := newHarness(t, Config{Users: fakeUsers{"7": jane}, Subjects: fakeResolver{s: engine.Anonymous}}, nil)
	hs.store.Publish(mustSnapshot(t, djangoFlagsData()), testNow())
	pipe := hs.proxy.Pipeline()

	for _, tc := range []struct {
		name string
		in   Input
		want map[string]bool
		src  map[string]string
		subj string
	}{
		{"jane on a beta page", Input{UserID: "7", Path: "/beta/x"},
			map[string]bool{"beta_path": true, "param": false, "jane_only": true, "broken": false}, map[string]string{}, "7"},
		{"anonymous with the parameter", Input{Path: "/", RawQuery: "enable_param=True"},
			map[string]bool{"beta_path": false, "param": true, "jane_only": false, "broken": false}, map[string]string{"param": "query"}, ""},
		{"unknown user", Input{UserID: "99", Path: "/beta/"},
			map[string]bool{"beta_path": true, "param": false, "jane_only": false, "broken": false}, map[string]string{}, ""},
		{"percent-encoded path", Input{Path: "/b%65ta/"},
			map[string]bool{"beta_path": true, "param": false, "jane_only": false, "broken": false}, map[string]string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := pipe.Decide(t.Context(), tc.in)
			if res.Subject.UserID != tc.subj {
				t.Errorf("subject %q, want %q", res.Subject.UserID, tc.subj)
			}
			p := decode(t, res.Header)
			if diff := cmp.Diff(tc.want, p.Flags); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.src, p.Sources); diff != "" {
				t.Errorf("sources (-want +got):\n%s", diff)
			}
			if i, _ := res.Snapshot.FlagIndex("broken"); res.Decisions.Flags[i].Reason != engine.ReasonError {
				t.Errorf("broken: %+v, want reason error", res.Decisions.Flags[i])
			}
		})
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.decisionErrors.WithLabelValues("django-flags")); got != 4 {
		t.Errorf("flagproxy_decision_errors_total{source=django-flags} = %v, want 4", got)
	}
	res := pipe.Decide(t.Context(), Input{UserID: "boom"})
	if res.Subject.UserID != "" || testutil.ToFloat64(hs.proxy.metrics.identityErrors) != 1 {
		t.Errorf("failed user lookup: subject %+v, identity errors %v", res.Subject, testutil.ToFloat64(hs.proxy.metrics.identityErrors))
	}
}

// TestPipelineHeaderIsWhatTheUpstreamGets checks that the proxy sends the
// pipeline's header as is: one encoder, one signature.
func TestPipelineHeaderIsWhatTheUpstreamGets(t *testing.T) {
	hs := newHarness(t, Config{SigningKey: []byte("k")}, nil)
	hs.store.Publish(mustSnapshot(t, djangoFlagsData()), testNow())
	hs.get(t, "/beta/?enable_param=True", nil)
	got := hs.backend.last(t).Header
	want := hs.proxy.Pipeline().Decide(t.Context(), Input{Path: "/beta/", RawQuery: "enable_param=True"}).Header
	for _, k := range []string{FlagsHeader, SignatureHeader} {
		if got.Get(k) != want.Get(k) {
			t.Errorf("%s: upstream got %q, pipeline says %q", k, got.Get(k), want.Get(k))
		}
	}
}

// TestPipelineWithoutSnapshot: before the first load the header says
// unavailable, and nothing else is decided.
func TestPipelineWithoutSnapshot(t *testing.T) {
	hs := newHarness(t, Config{}, nil)
	res := hs.proxy.Pipeline().Decide(t.Context(), Input{Path: "/"})
	if res.Snapshot != nil || res.State != StateUnavailable || res.Header.Get(FlagsHeader) != unavailableJSON {
		t.Errorf("Decide without a snapshot = %+v", res)
	}
	if _, ok := res.Header[http.CanonicalHeaderKey(SignatureHeader)]; ok {
		t.Error("signature without a signing key")
	}
}

// TestPipelineSignsUnavailable: with a signing key, even the value sent
// before the first load is signed, so the Python side can tell it from a
// forged one.
func TestPipelineSignsUnavailable(t *testing.T) {
	hs := newHarness(t, Config{SigningKey: []byte("k")}, nil)
	res := hs.proxy.Pipeline().Decide(t.Context(), Input{Path: "/"})
	want := sign([]byte("k"), testNow().Unix(), unavailableJSON)
	if got := res.Header.Get(SignatureHeader); got != want {
		t.Errorf("signature %q, want %q", got, want)
	}
}

// TestStaleIdentityIsSaid: a visitor recognised from cache during an
// outage (Subject.Stale) gets "identity":"stale"; anyone else has no such
// member.
func TestStaleIdentityIsSaid(t *testing.T) {
	for _, stale := range []bool{false, true} {
		hs := newHarness(t, Config{Subjects: fakeResolver{s: engine.Subject{UserID: "7", Authenticated: true, Stale: stale}}}, nil)
		hs.store.Publish(mustSnapshot(t, djangoFlagsData()), testNow())
		hs.get(t, "/", nil)
		h := hs.backend.last(t).Header
		want := ""
		if stale {
			want = "stale"
		}
		if p := decode(t, h); p.Identity != want {
			t.Errorf("stale %v: identity %q in %s", stale, p.Identity, h.Get(FlagsHeader))
		}
	}
}
