package engine_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/flagproxy/flagproxy/engine"
)

// The golden files in testdata/evaluate are described in
// testdata/evaluate/README.md. Their expectations are written by hand from
// shared/spec (the specification checked out beside the repository); -update rewrites them from the engine's output and is
// meant for reformatting or for a deliberate rule change whose diff is then
// checked against the spec line by line.
func init() {
	// Register -update unless another test file of this binary already did.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the expectations in testdata/evaluate from the engine's output")
	}
}

func updating() bool {
	f := flag.Lookup("update")
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	b, _ := g.Get().(bool)
	return b
}

const goldenDir = "testdata/evaluate"

type goldenFile struct {
	Description string                   `json:"description"`
	Snapshot    goldenSnapshot           `json:"snapshot,omitempty"`
	Subjects    map[string]goldenSubject `json:"subjects"`
	Cases       []*goldenCase            `json:"cases"`
}

// goldenSnapshot is engine.Data in its JSON form (see
// testdata/evaluate/README.md). It is kept as written, so -update leaves it
// alone.
type goldenSnapshot = json.RawMessage

type goldenSubject struct {
	UserID        string  `json:"user_id,omitempty"`
	Username      string  `json:"username,omitempty"`
	Authenticated bool    `json:"authenticated,omitempty"`
	Staff         bool    `json:"staff,omitempty"`
	Superuser     bool    `json:"superuser,omitempty"`
	Groups        []int64 `json:"groups,omitempty"`
}

type goldenCase struct {
	Name string `json:"name"`
	Spec string `json:"spec"`
	Note string `json:"note,omitempty"`
	// Snapshot, when set, replaces the file's snapshot for this case.
	Snapshot goldenSnapshot    `json:"snapshot,omitempty"`
	Subject  string            `json:"subject"`
	Query    map[string]string `json:"query,omitempty"`
	Cookies  map[string]string `json:"cookies,omitempty"`
	Header   map[string]string `json:"header,omitempty"`
	Language *string           `json:"language,omitempty"`
	// Target is a raw request target ("/path?query"): it sets the path as
	// Django decodes it, and the query (over Query).
	Target string `json:"target,omitempty"`
	// Now is the request's time, RFC 3339.
	Now       string           `json:"now,omitempty"`
	Overrides *goldenOverrides `json:"overrides,omitempty"`
	Rolls     []float64        `json:"rolls,omitempty"`
	Expect    goldenExpect     `json:"expect"`
}

type goldenOverrides struct {
	URL     map[string]bool `json:"url,omitempty"`
	Session map[string]bool `json:"session,omitempty"`
}

type goldenExpect struct {
	// Flags, Switches and Samples map a name to "on <reason>" or
	// "off <reason>".
	Flags    map[string]string `json:"flags,omitempty"`
	Switches map[string]string `json:"switches,omitempty"`
	Samples  map[string]string `json:"samples,omitempty"`
	// Absent lists flag names the snapshot must not know.
	Absent []string `json:"absent,omitempty"`
	// Cookies is every cookie of the evaluation, in order, written as
	// "name=value[; Max-Age=N][; Secure]". Required; [] for none.
	Cookies []string `json:"cookies"`
}

func TestEvaluateGolden(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no golden files in %s", goldenDir)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".json"), func(t *testing.T) {
			runGoldenFile(t, path)
		})
	}
}

func runGoldenFile(t *testing.T, path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var gf goldenFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&gf); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if len(gf.Cases) == 0 {
		t.Fatalf("%s has no cases", path)
	}
	var fileSnap *engine.Snapshot
	if gf.Snapshot != nil {
		if fileSnap, err = buildGolden(gf.Snapshot); err != nil {
			t.Fatalf("file snapshot: %v", err)
		}
	}
	seen := make(map[string]bool)
	for _, c := range gf.Cases {
		if c.Name == "" || seen[c.Name] {
			t.Fatalf("case name %q is empty or repeated", c.Name)
		}
		seen[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			snap := fileSnap
			if c.Snapshot != nil {
				if snap, err = buildGolden(c.Snapshot); err != nil {
					t.Fatalf("case snapshot: %v", err)
				}
			}
			if snap == nil {
				t.Fatal("neither the file nor the case has a snapshot")
			}
			subj, ok := gf.Subjects[c.Subject]
			if !ok {
				t.Fatalf("subject %q is not defined in the file's subjects", c.Subject)
			}
			runGoldenCase(t, snap, subj.subject(), c)
		})
	}
	if updating() {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(&gf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), raw) {
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("updated %s: review the diff against the spec", path)
		}
	}
}

func runGoldenCase(t *testing.T, snap *engine.Snapshot, subj engine.Subject, c *goldenCase) {
	t.Helper()
	if c.Spec == "" {
		t.Error(`"spec" is empty: say which part of the spec the case comes from`)
	}
	if c.Expect.Cookies == nil {
		t.Error(`"expect.cookies" is missing (write [] for none)`)
	}
	if len(c.Expect.Flags)+len(c.Expect.Switches)+len(c.Expect.Samples)+len(c.Expect.Absent) == 0 {
		t.Error("the case expects nothing")
	}
	for _, r := range c.Rolls {
		if r < 0 || r >= 1 {
			t.Fatalf("roll %v is outside [0, 1)", r)
		}
	}
	req := c.request(subj)
	rolls := &goldenRand{t: t, rolls: c.Rolls}
	got := snap.Evaluate(req, rolls)
	rolls.done()

	if len(got.Flags) != snap.NumFlags() || len(got.Switches) != snap.NumSwitches() || len(got.Samples) != snap.NumSamples() {
		t.Fatalf("Evaluate returned %d/%d/%d decisions for %d/%d/%d flags/switches/samples",
			len(got.Flags), len(got.Switches), len(got.Samples), snap.NumFlags(), snap.NumSwitches(), snap.NumSamples())
	}

	// Flags.
	for _, name := range slices.Sorted(maps.Keys(c.Expect.Flags)) {
		i, ok := snap.FlagIndex(name)
		if !ok {
			t.Errorf("flag %q: not in the snapshot", name)
			continue
		}
		checkDecision(t, "flag", name, c.Expect.Flags, got.Flags[i])
	}
	switches := indexByName(snap.NumSwitches(), snap.SwitchName)
	for _, name := range slices.Sorted(maps.Keys(c.Expect.Switches)) {
		i, ok := switches[name]
		if !ok {
			t.Errorf("switch %q: not in the snapshot", name)
			continue
		}
		checkDecision(t, "switch", name, c.Expect.Switches, got.Switches[i])
	}
	samples := indexByName(snap.NumSamples(), snap.SampleName)
	for _, name := range slices.Sorted(maps.Keys(c.Expect.Samples)) {
		i, ok := samples[name]
		if !ok {
			t.Errorf("sample %q: not in the snapshot", name)
			continue
		}
		checkDecision(t, "sample", name, c.Expect.Samples, got.Samples[i])
	}
	for _, name := range c.Expect.Absent {
		if _, ok := snap.FlagIndex(name); ok {
			t.Errorf("flag %q: the snapshot knows it, want it absent", name)
		}
	}

	// Cookies.
	var want []engine.Cookie
	for _, s := range c.Expect.Cookies {
		ck, err := parseGoldenCookie(s)
		if err != nil {
			t.Errorf("expect.cookies: %v", err)
			continue
		}
		want = append(want, ck)
	}
	if diff := cmp.Diff(want, got.Cookies, cmpopts.IgnoreFields(engine.Cookie{}, "Flag")); diff != "" {
		if updating() {
			c.Expect.Cookies = make([]string, 0, len(got.Cookies))
			for _, ck := range got.Cookies {
				c.Expect.Cookies = append(c.Expect.Cookies, formatGoldenCookie(ck))
			}
		} else {
			t.Errorf("cookies mismatch (-want +got):\n%s", diff)
		}
	}
	if updating() && c.Expect.Cookies == nil {
		c.Expect.Cookies = []string{}
	}

	// The proxy leaves unparsed (nil) the inputs the snapshot says no rule
	// reads; the decisions must not change when it does.
	uses := snap.Inputs()
	if !uses.Has(engine.InputQuery) {
		req.Query, req.RawQuery = nil, ""
	}
	if !uses.Has(engine.InputCookies) {
		req.Cookies = nil
	}
	if !uses.Has(engine.InputHeader) {
		req.Header = nil
	}
	if !uses.Has(engine.InputLanguage) {
		req.Language, req.HasLanguage = "", false
	}
	if !uses.Has(engine.InputPath) {
		req.Path = ""
	}
	if !uses.Has(engine.InputTime) {
		req.Now = time.Time{}
	}
	rolls2 := &goldenRand{t: t, rolls: c.Rolls}
	got2 := snap.Evaluate(req, rolls2)
	rolls2.done()
	if diff := cmp.Diff(got, got2); diff != "" {
		t.Errorf("Inputs() = %b, but leaving the others out changes the result (-all inputs +reported inputs):\n%s", uses, diff)
	}
}

func checkDecision(t *testing.T, kind, name string, expect map[string]string, got engine.Decision) {
	t.Helper()
	gotText := formatDecision(got)
	if _, _, err := parseDecision(expect[name]); err != nil {
		t.Errorf("%s %q: %v", kind, name, err)
	}
	if expect[name] != gotText {
		if updating() {
			expect[name] = gotText
			return
		}
		t.Errorf("%s %q = %q, want %q", kind, name, gotText, expect[name])
	}
}

func indexByName(n int, name func(int) string) map[string]int {
	m := make(map[string]int, n)
	for i := range n {
		m[name(i)] = i
	}
	return m
}

func formatDecision(d engine.Decision) string {
	if d.On {
		return "on " + d.Reason.String()
	}
	return "off " + d.Reason.String()
}

func parseDecision(s string) (bool, engine.Reason, error) {
	state, reason, ok := strings.Cut(s, " ")
	if !ok || reason == "" || strings.Contains(reason, " ") || (state != "on" && state != "off") {
		return false, 0, fmt.Errorf(`decision %q is not "on <reason>" or "off <reason>"`, s)
	}
	r, known := engine.ReasonNamed(reason)
	if !known {
		return false, 0, fmt.Errorf("decision %q: unknown reason", s)
	}
	return state == "on", r, nil
}

// parseGoldenCookie reads "name=value[; Max-Age=N][; Secure]". Path=/ and
// Expires are the proxy's business and are not part of engine.Cookie.
func parseGoldenCookie(s string) (engine.Cookie, error) {
	parts := strings.Split(s, "; ")
	name, value, ok := strings.Cut(parts[0], "=")
	if !ok || name == "" {
		return engine.Cookie{}, fmt.Errorf("cookie %q: want name=value first", s)
	}
	c := engine.Cookie{Name: name, Value: value}
	rest := parts[1:]
	if len(rest) > 0 && strings.HasPrefix(rest[0], "Max-Age=") {
		n, err := strconv.Atoi(strings.TrimPrefix(rest[0], "Max-Age="))
		if err != nil || n <= 0 {
			return engine.Cookie{}, fmt.Errorf("cookie %q: bad Max-Age", s)
		}
		c.MaxAge = n
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] == "Secure" {
		c.Secure = true
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] == "Refresh" {
		c.Refresh = true
		rest = rest[1:]
	}
	if len(rest) > 0 {
		return engine.Cookie{}, fmt.Errorf("cookie %q: unexpected %q (only Max-Age=N, Secure, Refresh in that order)", s, rest[0])
	}
	return c, nil
}

func formatGoldenCookie(c engine.Cookie) string {
	s := c.Name + "=" + c.Value
	if c.MaxAge != 0 {
		s += "; Max-Age=" + strconv.Itoa(c.MaxAge)
	}
	if c.Secure {
		s += "; Secure"
	}
	if c.Refresh {
		s += "; Refresh"
	}
	return s
}

// buildGolden decodes a golden snapshot into engine.Data, strictly, over
// every library's defaults, and builds it.
func buildGolden(raw goldenSnapshot) (*engine.Snapshot, error) {
	d := engine.DefaultData()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if len(d.Sources) == 0 {
		return nil, errors.New(`"sources" is empty`)
	}
	loc, err := time.LoadLocation(d.DjangoFlags.TimeZone)
	if err != nil {
		return nil, err
	}
	d.DjangoFlags.Location = loc
	return engine.NewSnapshot(d)
}

func (s goldenSubject) subject() engine.Subject {
	return engine.Subject{
		UserID:        s.UserID,
		Username:      s.Username,
		Authenticated: s.Authenticated,
		Staff:         s.Staff,
		Superuser:     s.Superuser,
		Groups:        s.Groups,
	}
}

func (c *goldenCase) request(subj engine.Subject) *engine.Request {
	r := &engine.Request{Subject: subj}
	if c.Query != nil {
		r.Query = engine.Params(c.Query)
	}
	if c.Cookies != nil {
		r.Cookies = engine.Params(c.Cookies)
	}
	if c.Header != nil {
		r.Header = foldedHeader(c.Header)
	}
	if c.Language != nil {
		r.Language, r.HasLanguage = *c.Language, true
	}
	if c.Overrides != nil {
		r.Overrides = engine.Overrides{URL: c.Overrides.URL, Session: c.Overrides.Session}
	}
	if c.Target != "" {
		path, query, _ := strings.Cut(c.Target, "?")
		r.Path, r.RawQuery, r.Query = engine.DjangoPath(path), query, engine.ParseQuery(query)
	}
	if c.Now != "" {
		r.Now, _ = time.Parse(time.RFC3339Nano, c.Now)
	}
	return r
}

// foldedHeader looks header names up case-insensitively, as Django's
// request.headers does.
type foldedHeader map[string]string

func (h foldedHeader) Get(name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// goldenRand hands out the case's rolls in order and fails the case when
// the engine asks for more, or uses fewer, than the case lists.
type goldenRand struct {
	t     *testing.T
	rolls []float64
	n     int
}

func (r *goldenRand) Float64() float64 {
	r.t.Helper()
	r.n++
	if r.n > len(r.rolls) {
		r.t.Errorf("roll #%d requested, but the case lists only %d", r.n, len(r.rolls))
		return 0
	}
	return r.rolls[r.n-1]
}

func (r *goldenRand) done() {
	r.t.Helper()
	if r.n < len(r.rolls) {
		r.t.Errorf("the engine rolled %d times, but the case lists %d rolls", r.n, len(r.rolls))
	}
}
