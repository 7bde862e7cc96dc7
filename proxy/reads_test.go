package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

const readsValue = `{"flags":["a"],"switches":["s"],"samples":[],"missing":{"flags":["ghost"],"switches":[],"samples":[]}}`

func TestTakeReads(t *testing.T) {
	key := []byte("k")
	now := testNow()
	good := sign(key, now.Unix(), readsValue)
	mac := good[strings.LastIndexByte(good, '=')+1:]
	tests := []struct {
		name   string
		key    []byte
		header http.Header
		want   string
	}{
		{"absent", nil, http.Header{}, readsAbsent},
		{"unsigned, no key", nil, http.Header{ReadsHeader: {readsValue}}, readsOK},
		{"unsigned, key", key, http.Header{ReadsHeader: {readsValue}}, readsUnsigned},
		{"signed", key, http.Header{ReadsHeader: {readsValue}, ReadsSignatureHeader: {good}}, readsOK},
		{"one good v1 of several", key, http.Header{ReadsHeader: {readsValue},
			ReadsSignatureHeader: {"t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=" + strings.Repeat("0", 64) + ",v1=" + mac}}, readsOK},
		{"other key", key, http.Header{ReadsHeader: {readsValue}, ReadsSignatureHeader: {sign([]byte("x"), now.Unix(), readsValue)}}, readsBadSignature},
		{"changed value", key, http.Header{ReadsHeader: {strings.Replace(readsValue, "ghost", "ghast", 1)}, ReadsSignatureHeader: {good}}, readsBadSignature},
		{"too old", key, http.Header{ReadsHeader: {readsValue}, ReadsSignatureHeader: {sign(key, now.Add(-6*time.Minute).Unix(), readsValue)}}, readsBadSignature},
		{"from the future", key, http.Header{ReadsHeader: {readsValue}, ReadsSignatureHeader: {sign(key, now.Add(6*time.Minute).Unix(), readsValue)}}, readsBadSignature},
		{"no t", key, http.Header{ReadsHeader: {readsValue}, ReadsSignatureHeader: {"v1=" + mac}}, readsBadSignature},
		{"two t", key, http.Header{ReadsHeader: {readsValue}, ReadsSignatureHeader: {good + ",t=1"}}, readsBadSignature},
		{"garbage signature", key, http.Header{ReadsHeader: {readsValue}, ReadsSignatureHeader: {"\x00,,=="}}, readsBadSignature},
		{"not JSON", nil, http.Header{ReadsHeader: {`{"flags":`}}, readsMalformed},
		{"wrong types", nil, http.Header{ReadsHeader: {`{"flags":{"a":1}}`}}, readsMalformed},
		{"two lines", nil, http.Header{ReadsHeader: {readsValue, readsValue}}, readsMalformed},
		{"too long", nil, http.Header{ReadsHeader: {`{"flags":["` + strings.Repeat("a", MaxReadsSize) + `"]}`}}, readsMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header.Clone()
			h["X_Flagproxy_Reads"] = []string{"underscored"}
			h["X-Flagproxy-Flags"] = []string{"{}"}
			h["Content-Type"] = []string{"text/html"}
			rep, got := takeReads(h, tt.key, func() time.Time { return now })
			if got != tt.want || (rep != nil) != (got == readsOK) {
				t.Errorf("result %q (report %v), want %q", got, rep != nil, tt.want)
			}
			if diff := cmp.Diff(http.Header{"Content-Type": {"text/html"}}, h); diff != "" {
				t.Errorf("headers left (-want +got):\n%s", diff)
			}
		})
	}
}

// readsSnapshot defines the flag "a", the switch "s" and the sample "p".
func readsSnapshot(t *testing.T) *engine.Snapshot {
	return mustSnapshot(t, engine.Data{Sources: []engine.Source{engine.SourceWaffle},
		WaffleFlags: []engine.WaffleFlag{{Name: "a"}, {Name: "b"}}, Switches: []engine.Switch{{Name: "s"}},
		Samples: []engine.Sample{{Name: "p"}}})
}

func TestReadLog(t *testing.T) {
	snap := readsSnapshot(t)
	l := newReadLog()
	t0 := testNow()
	l.record(snap, &readsReport{readNames: readNames{Flags: []string{"a"}, Switches: []string{"s", "p"}},
		Missing: readNames{Flags: []string{"ghost"}, Samples: []string{"p"}}}, t0)
	l.record(snap, &readsReport{readNames: readNames{Flags: []string{"a"}}}, t0.Add(time.Hour))
	info := l.info(snap)
	if !info.Since.Equal(t0) {
		t.Errorf("since %v, want %v", info.Since, t0)
	}
	for _, c := range []struct {
		kind engine.Kind
		name string
		want time.Time
	}{
		{engine.KindFlag, "a", t0.Add(time.Hour)}, {engine.KindFlag, "b", time.Time{}},
		{engine.KindSwitch, "s", t0}, {engine.KindSample, "p", t0},
	} {
		if got := info.LastRead(c.kind, c.name); !got.Equal(c.want) {
			t.Errorf("last read of %v %s = %v, want %v", c.kind, c.name, got, c.want)
		}
	}
	want := []MissingName{{engine.KindFlag, "ghost", t0}, {engine.KindSwitch, "p", t0}}
	if diff := cmp.Diff(want, info.Missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	// "ghost" defined later: it is no longer missing.
	later := mustSnapshot(t, engine.Data{Sources: []engine.Source{engine.SourceWaffle}, WaffleFlags: []engine.WaffleFlag{{Name: "ghost"}}})
	if got := l.info(later).Missing; len(got) != 1 || got[0].Name != "p" {
		t.Errorf("missing after ghost was defined: %v", got)
	}
}

func TestReadLogIsBounded(t *testing.T) {
	snap := readsSnapshot(t)
	l := newReadLog()
	for i := range 20 {
		names := make([]string, 500)
		for j := range names {
			names[j] = fmt.Sprintf("n%d-%d", i, j)
		}
		l.record(snap, &readsReport{readNames: readNames{Flags: names, Switches: names}, Missing: readNames{Samples: names}}, testNow())
	}
	if n := l.missingCount(); n != maxMissing {
		t.Errorf("missing names kept: %d, want %d", n, maxMissing)
	}
	if n := len(l.last); n != 0 {
		t.Errorf("last-read entries for undefined names: %d", n)
	}
	// Names of replaced snapshots are dropped once there are too many.
	for i := range 3 * maxMissing {
		s := mustSnapshot(t, engine.Data{Sources: []engine.Source{engine.SourceWaffle}, Switches: []engine.Switch{{Name: strconv.Itoa(i)}}})
		l.record(s, &readsReport{readNames: readNames{Switches: []string{strconv.Itoa(i)}}}, testNow())
	}
	if n := len(l.last); n > 1+maxMissing+1 {
		t.Errorf("last-read entries: %d, want at most %d", n, maxMissing+2)
	}
}

func TestOnlyRead(t *testing.T) {
	cs := []engine.Cookie{
		{Flag: "a", Name: "dwf_a", Value: "True"},
		{Flag: "b", Name: "dwf_b", Value: "False", Refresh: true},
		{Flag: "t", Name: "dwft_t", Value: "True"},
		{Name: RefreshCookie, Value: "1"},
	}
	names := func(cs []engine.Cookie) (out []string) {
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	for _, tt := range []struct {
		read readsReport
		want []string
	}{
		{readsReport{}, nil},
		{readsReport{readNames: readNames{Flags: []string{"a", "t"}}}, []string{"dwf_a", "dwft_t"}},
		{readsReport{Missing: readNames{Flags: []string{"b"}}}, []string{"dwf_b", RefreshCookie}},
		{readsReport{readNames: readNames{Switches: []string{"a"}, Samples: []string{"b"}}}, nil},
	} {
		if diff := cmp.Diff(tt.want, names(onlyRead(cs, &tt.read))); diff != "" {
			t.Errorf("read %+v (-want +got):\n%s", tt.read, diff)
		}
	}
	// Every cookie written afresh (a first visit): the marker stays with
	// any cookie kept, and goes with none.
	fresh := []engine.Cookie{cs[0], {Flag: "c", Name: "dwf_c", Value: "False"}, cs[3]}
	for read, want := range map[string][]string{"a": {"dwf_a", RefreshCookie}, "z": nil} {
		if diff := cmp.Diff(want, names(onlyRead(fresh, &readsReport{readNames: readNames{Flags: []string{read}}}))); diff != "" {
			t.Errorf("fresh, read %q (-want +got):\n%s", read, diff)
		}
	}
}

// TestLazyWaffleCookies runs responses with and without a reads report
// through the proxy.
func TestLazyWaffleCookies(t *testing.T) {
	d := engine.Data{Sources: []engine.Source{engine.SourceWaffle}, WaffleFlags: []engine.WaffleFlag{
		{Name: "read", Percent: engine.PercentOf(500)}, {Name: "unread", Percent: engine.PercentOf(500)}}}
	report := `{"flags":["read"],"switches":[],"samples":[],"missing":{"flags":["nowhere"],"switches":[],"samples":[]}}`
	for _, tt := range []struct {
		name   string
		eager  bool
		key    []byte
		header http.Header
		want   []string
		result string
	}{
		{"no report: every cookie", false, nil, nil, []string{"dwf_read", "dwf_unread", RefreshCookie}, readsAbsent},
		{"report: the flags read", false, nil, http.Header{ReadsHeader: {report}}, []string{"dwf_read", RefreshCookie}, readsOK},
		{"report, eager", true, nil, http.Header{ReadsHeader: {report}}, []string{"dwf_read", "dwf_unread", RefreshCookie}, readsOK},
		{"unsigned report with a key is ignored", false, []byte("k"), http.Header{ReadsHeader: {report}}, []string{"dwf_read", "dwf_unread", RefreshCookie}, readsUnsigned},
		{"signed report", false, []byte("k"), http.Header{ReadsHeader: {report}, ReadsSignatureHeader: {sign([]byte("k"), testNow().Unix(), report)}}, []string{"dwf_read", RefreshCookie}, readsOK},
		{"bad report", false, nil, http.Header{ReadsHeader: {"["}}, []string{"dwf_read", "dwf_unread", RefreshCookie}, readsMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, Config{Rand: fixedRand(0.1), EagerWaffleCookies: tt.eager, SigningKey: tt.key}, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				w.Header()["X_Flagproxy_Anything"] = []string{"x"}
				w.Header().Set("Trailer", "X-Flagproxy-Late")
				_, _ = w.Write([]byte("ok"))
				w.Header().Set("X-Flagproxy-Late", "x")
			})
			hs.store.Publish(mustSnapshot(t, d), testNow())
			res := hs.get(t, "/", nil)
			var got []string
			for _, c := range res.Cookies() {
				got = append(got, c.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("cookies (-want +got):\n%s", diff)
			}
			for k := range res.Header {
				if inNamespace(k) {
					t.Errorf("the client got %s", k)
				}
			}
			for k := range res.Trailer {
				if inNamespace(k) {
					t.Errorf("the client got the trailer %s", k)
				}
			}
			if n := testutil.ToFloat64(hs.proxy.reads.reports.WithLabelValues(tt.result)); n != 1 {
				t.Errorf("flagproxy_reads_reports_total{result=%q} = %v, want 1", tt.result, n)
			}
			info := hs.proxy.pipe.reads.info(hs.store.Load())
			if wantRead := tt.result == readsOK; !info.LastRead(engine.KindFlag, "read").IsZero() != wantRead || (len(info.Missing) == 1) != wantRead {
				t.Errorf("read log: %+v", info)
			}
		})
	}
}

// BenchmarkTakeReads is the per-response cost of a signed report of ten
// names: stripping, verifying, decoding and recording.
func BenchmarkTakeReads(b *testing.B) {
	key := []byte("k")
	names := make([]string, 10)
	for i := range names {
		names[i] = fmt.Sprintf("flag_%d", i)
	}
	value := `{"flags":["` + strings.Join(names, `","`) + `"],"switches":[],"samples":[],"missing":{"flags":[],"switches":[],"samples":[]}}`
	sig := sign(key, testNow().Unix(), value)
	flags := make([]engine.WaffleFlag, len(names))
	for i, n := range names {
		flags[i] = engine.WaffleFlag{Name: n}
	}
	d := engine.DefaultData()
	d.Sources, d.WaffleFlags = []engine.Source{engine.SourceWaffle}, flags
	snap, err := engine.NewSnapshot(d)
	if err != nil {
		b.Fatal(err)
	}
	l := newReadLog()
	b.ReportAllocs()
	for b.Loop() {
		h := http.Header{ReadsHeader: {value}, ReadsSignatureHeader: {sig}, "Content-Type": {"text/html"}}
		rep, _ := takeReads(h, key, testNow)
		l.record(snap, rep, testNow())
	}
}
