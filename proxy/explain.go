package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// Explain asks Decide for the steps of decisions (Input.Explain): those of
// the name Key names ("beta", "flag:beta", "switch:maint",
// "sample:survey"), or, with All, of every name. Decide fills the rest.
type Explain struct {
	Key string
	All bool
	// Found says whether Key names anything; Explanation is its
	// explanation.
	Found       bool
	Explanation engine.Explanation
	// Explanations holds, with All, every flag's, then every switch's,
	// then every sample's.
	Explanations []engine.Explanation
}

// fill explains the decisions d that snap made for r.
func (x *Explain) fill(snap *engine.Snapshot, r *engine.Request, d *engine.Decisions) {
	if x.All {
		for i := range d.Flags {
			x.Explanations = append(x.Explanations, snap.Explain(engine.KindFlag, i, r, d.Flags[i]))
		}
		for i := range d.Switches {
			x.Explanations = append(x.Explanations, snap.Explain(engine.KindSwitch, i, r, d.Switches[i]))
		}
		for i := range d.Samples {
			x.Explanations = append(x.Explanations, snap.Explain(engine.KindSample, i, r, d.Samples[i]))
		}
		return
	}
	k, name := parseKey(x.Key)
	var i int
	switch k {
	case kindSwitch:
		i, x.Found = findName(snap.NumSwitches(), snap.SwitchName, name)
		if x.Found {
			x.Explanation = snap.Explain(engine.KindSwitch, i, r, d.Switches[i])
		}
	case kindSample:
		i, x.Found = findName(snap.NumSamples(), snap.SampleName, name)
		if x.Found {
			x.Explanation = snap.Explain(engine.KindSample, i, r, d.Samples[i])
		}
	default:
		i, x.Found = snap.FlagIndex(name)
		if x.Found {
			x.Explanation = snap.Explain(engine.KindFlag, i, r, d.Flags[i])
		}
	}
}

// ExplainQuery is what an explanation is asked for: a flag (a key as in
// Explain), a visitor (a user's primary key, or a Django session key, or
// neither: anonymous) and a URL (path and query, default "/"), and,
// optionally, the Cookie line the visitor's browser would send (waffle's
// dwf_ and dwft_ cookies, say) and its Accept-Language header.
type ExplainQuery struct {
	Flag     string `json:"flag"`
	User     string `json:"user,omitempty"`
	Session  string `json:"session,omitempty"`
	URL      string `json:"url"`
	Cookie   string `json:"cookie,omitempty"`
	Language string `json:"language,omitempty"`
}

// ExplainAnswer is the explanation of one decision, as /explain serves it
// and `flagproxy explain` prints it.
type ExplainAnswer struct {
	Query       ExplainQuery       `json:"query"`
	Explanation engine.Explanation `json:"explanation"`
	// Because is the step that decided, in short.
	Because string `json:"because"`
	// Visitor is who the decision was made for.
	Visitor ExplainVisitor `json:"visitor"`
	// Overrides are the overrides the pipeline considered: whether the
	// visitor may flip, those applied (URL, session) and the parameters
	// refused.
	Overrides engine.Overrides `json:"overrides"`
	Version   string           `json:"version"`
	State     string           `json:"state"`
	// Header is the flags header the same request would carry.
	Header string `json:"header"`
}

// ExplainVisitor describes the visitor a decision was made for.
type ExplainVisitor struct {
	// Identity is "user" (User named an active user, or Session a valid
	// session), "anonymous", or "unknown-user" (decided as anonymous).
	Identity      string  `json:"identity"`
	UserID        string  `json:"user_id,omitempty"`
	Username      string  `json:"username,omitempty"`
	Authenticated bool    `json:"authenticated"`
	Staff         bool    `json:"staff"`
	Superuser     bool    `json:"superuser"`
	Groups        []int64 `json:"groups,omitempty"`
	Stale         bool    `json:"stale,omitempty"`
}

// errNotFound is wrapped by ExplainFor's error for a flag that does not
// exist, and errBadQuery for a query it cannot read.
var (
	errNotFound = errors.New("not found")
	errBadQuery = errors.New("bad query")
)

// ExplainFor decides q through p, exactly as a web request by that
// visitor at that URL would be decided (overrides included), and explains
// the decision of q.Flag. sessionCookie is Django's SESSION_COOKIE_NAME,
// for q.Session.
func ExplainFor(ctx context.Context, p *Pipeline, q ExplainQuery, sessionCookie string) (ExplainAnswer, error) {
	in, err := q.input(sessionCookie)
	if err != nil {
		return ExplainAnswer{}, err
	}
	x := &Explain{Key: q.Flag}
	in.Explain = x
	res := p.Decide(ctx, in)
	if res.Snapshot == nil {
		return ExplainAnswer{}, errors.New("no flags loaded yet")
	}
	if !x.Found {
		return ExplainAnswer{}, fmt.Errorf("%w: no %s", errNotFound, describeKey(q.Flag))
	}
	a := ExplainAnswer{Query: q, Explanation: x.Explanation, Because: x.Explanation.Because(),
		Overrides: res.Overrides, Version: res.Snapshot.Version(), State: res.State, Header: res.Header.Get(FlagsHeader)}
	s := res.Subject
	a.Visitor = ExplainVisitor{Identity: identityOf(q.User+q.Session, s), UserID: s.UserID, Username: s.Username,
		Authenticated: s.Authenticated, Staff: s.Staff, Superuser: s.Superuser, Groups: s.Groups, Stale: s.Stale}
	return a, nil
}

// describeKey says what a key names, for errors.
func describeKey(key string) string {
	k, name := parseKey(key)
	return fmt.Sprintf("%s %q (keys: name or flag:name, switch:name, sample:name)", k, name)
}

// input checks q and turns it into the pipeline's Input.
func (q *ExplainQuery) input(sessionCookie string) (Input, error) {
	if q.Flag == "" {
		return Input{}, fmt.Errorf("%w: flag is required", errBadQuery)
	}
	if q.User != "" && q.Session != "" {
		return Input{}, fmt.Errorf("%w: give user or session, not both", errBadQuery)
	}
	if q.URL == "" {
		q.URL = "/"
	}
	u, err := url.Parse(q.URL)
	if err != nil || !strings.HasPrefix(q.URL, "/") || strings.HasPrefix(q.URL, "//") || u.Fragment != "" {
		return Input{}, fmt.Errorf("%w: url %q: want a path and query as a browser sends them, such as /checkout?x=1", errBadQuery, q.URL)
	}
	in := Input{Path: u.EscapedPath(), RawQuery: u.RawQuery, UserID: q.User, Cookie: q.Cookie}
	if q.Language != "" {
		in.Header = http.Header{"Accept-Language": {q.Language}}
	}
	if q.Session != "" {
		if sessionCookie == "" {
			sessionCookie = defaultSessionCookie
		}
		line, err := cookieLine(map[string]string{sessionCookie: q.Session}, "")
		if err != nil {
			return Input{}, fmt.Errorf("%w: session: %v", errBadQuery, err)
		}
		in.Cookie = strings.TrimPrefix(in.Cookie+"; "+line, "; ")
	}
	return in, nil
}

// WriteText prints the answer for a terminal.
func (a *ExplainAnswer) WriteText(w io.Writer) error {
	x := &a.Explanation
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s\n", x.Kind, x.Name, onOff(x.Decision.On))
	fmt.Fprintf(&b, "  because   %s (reason %s)\n", a.Because, x.Decision.Reason)
	fmt.Fprintf(&b, "  source    %s\n  rule      %s\n", cmpOr(string(x.Source), "several (a conflict)"), x.Rule)
	if x.Info.Note != "" {
		fmt.Fprintf(&b, "  note      %s\n", x.Info.Note)
	}
	if !x.Info.Modified.IsZero() {
		fmt.Fprintf(&b, "  modified  %s\n", x.Info.Modified.UTC().Format(time.RFC3339))
	}
	who := a.Visitor.Identity
	if a.Visitor.UserID != "" {
		who = fmt.Sprintf("user %s (%s)", a.Visitor.UserID, a.Visitor.Username)
	}
	fmt.Fprintf(&b, "  visitor   %s\n  url       %s\n\nSteps:\n", who, a.Query.URL)
	for i, st := range x.Steps {
		mark := " "
		if st.Decides {
			mark = "*"
		}
		fmt.Fprintf(&b, "  %2d.%s %s: %s\n", i+1, mark, st.Check, st.Outcome)
	}
	fmt.Fprintf(&b, "\nOverrides: may flip %v", a.Overrides.Allowed)
	for _, r := range a.Overrides.Refused {
		fmt.Fprintf(&b, "; refused %s (%s)", r.Param, r.Reason)
	}
	fmt.Fprintf(&b, "\nSnapshot %s, state %s\n", a.Version, a.State)
	_, err := io.WriteString(w, b.String())
	return err
}

func cmpOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
