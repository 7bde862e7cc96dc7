package engine

import (
	"fmt"
	"strings"
)

// Kind is what a name names: a flag (of any source), a waffle switch or a
// waffle sample. Names are unique within a kind only.
type Kind uint8

// The kinds of names.
const (
	KindFlag Kind = iota
	KindSwitch
	KindSample
)

func (k Kind) String() string {
	switch k {
	case KindSwitch:
		return "switch"
	case KindSample:
		return "sample"
	}
	return "flag"
}

// MarshalText writes the kind's name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind's name.
func (k *Kind) UnmarshalText(b []byte) error {
	for _, x := range []Kind{KindFlag, KindSwitch, KindSample} {
		if x.String() == string(b) {
			*k = x
			return nil
		}
	}
	return fmt.Errorf("unknown kind %q", b)
}

// Step is one check a library made deciding a flag, in the library's
// order: "everyone" "unset", "staff" "user is not staff", "groups" "in
// beta-testers → on".
type Step struct {
	Check   string `json:"check"`
	Outcome string `json:"outcome"`
	// Decides marks a step whose outcome is the answer: the library's
	// own, then any override that replaced it.
	Decides bool `json:"decides,omitempty"`
}

// Explanation says how one decision came about.
type Explanation struct {
	Kind   Kind   `json:"kind"`
	Name   string `json:"name"`
	Source Source `json:"source,omitempty"` // "" for a name two sources define
	// Rule is the rule in words ("staff, groups: beta-testers, 25 %").
	Rule     string   `json:"rule"`
	Info     Info     `json:"info"`
	Steps    []Step   `json:"steps"`
	Decision Decision `json:"decision"`
}

// Because returns the last deciding step as "check: outcome", the short
// reason of the decision.
func (x *Explanation) Because() string {
	for i := len(x.Steps) - 1; i >= 0; i-- {
		if st := x.Steps[i]; st.Decides {
			return st.Check + ": " + st.Outcome
		}
	}
	return x.Decision.Reason.String()
}

// explainer collects the steps of one explanation. A rule walks its
// library's checks again, in order, without drawing anything: where the
// library rolls at random, the roll's outcome is the one Evaluate made
// (given as made), or unknown when an override replaced it.
type explainer struct {
	snap  *Snapshot
	steps []Step
	made  Decision // the decision Evaluate made
	// rule is the rule's own decision, known unless it came from a
	// random roll whose outcome an override hid.
	rule  Decision
	known bool
}

func (x *explainer) step(check, outcome string) {
	x.steps = append(x.steps, Step{Check: check, Outcome: outcome})
}

// decide records the step that decides d.
func (x *explainer) decide(check, outcome string, d Decision) {
	x.steps = append(x.steps, Step{Check: check, Outcome: outcome + " → " + onOff(d.On), Decides: true})
	x.rule, x.known = d, true
}

// groupName names a group for a step.
func (x *explainer) groupName(id int64) string { return groupWords(x.snap, id) }

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// Explain explains d, the decision Evaluate made for r on the i-th name of
// kind k: the steps the library took in order, then the overrides that
// replaced its answer. The decision it reports is d itself, so it is
// always the one the request got.
func (s *Snapshot) Explain(k Kind, i int, r *Request, d Decision) Explanation {
	x := &explainer{snap: s, made: d}
	out := Explanation{Kind: k, Decision: d}
	switch k {
	case KindSwitch:
		sw := s.switches[i]
		out.Name, out.Source, out.Info, out.Rule = sw.Name, SourceWaffle, sw.Info, onOff(sw.Active)
		x.decide("active", fmt.Sprint(sw.Active), Decision{On: sw.Active, Reason: ReasonActive})
	case KindSample:
		sm := s.samples[i]
		out.Name, out.Source, out.Info, out.Rule = sm.Name, SourceWaffle, sm.Info, sm.Percent.String()+" %"
		x.decide("sample", fmt.Sprintf("%s %% of draws are on; drawn afresh for each request", sm.Percent), d)
	default:
		f := &s.flags[i]
		out.Name, out.Source, out.Info, out.Rule = f.name, f.source, s.FlagInfo(i), s.FlagRule(i)
		s.explainFlag(f, r, x)
	}
	out.Steps = x.steps
	return out
}

// explainFlag walks a flag's rule, then the overrides.
func (s *Snapshot) explainFlag(f *flagRule, r *Request, x *explainer) {
	if f.rule == nil {
		srcs := make([]string, len(f.alts))
		for i, a := range f.alts {
			srcs[i] = string(a.source)
		}
		x.decide("conflict", "defined by "+strings.Join(srcs, " and ")+"; off until one is removed",
			Decision{Reason: ReasonConflict})
	} else {
		f.rule.explain(r, x)
	}
	if on, ok := r.Overrides.Session[f.name]; ok {
		x.steps = append(x.steps, Step{Check: "session override", Outcome: "stored for this visitor → " + onOff(on), Decides: true})
	}
	if on, ok := r.Overrides.URL[f.name]; ok {
		x.steps = append(x.steps, Step{Check: "URL override", Outcome: "this request's parameter → " + onOff(on), Decides: true})
	}
}

// RuleDecision explains the i-th flag's own rule for r (no overrides) and
// returns the decision the library makes, and whether it is known (not
// when it comes from a random roll Evaluate did not make as d says). It
// lets tests check that an explanation decides as Evaluate does.
func (s *Snapshot) RuleDecision(i int, r *Request, d Decision) (Decision, bool) {
	f := &s.flags[i]
	if f.rule == nil {
		return Decision{Reason: ReasonConflict}, true
	}
	x := &explainer{snap: s, made: d}
	f.rule.explain(r, x)
	return x.rule, x.known
}

// FlagRule returns the i-th flag's rule in words.
func (s *Snapshot) FlagRule(i int) string {
	f := &s.flags[i]
	if f.rule != nil {
		return f.rule.words(s)
	}
	parts := make([]string, len(f.alts))
	for j, a := range f.alts {
		parts[j] = string(a.source) + ": " + a.rule.words(s)
	}
	return "conflict (" + strings.Join(parts, "; ") + ")"
}

// SwitchRule and SampleRule return a switch's and a sample's rule in
// words.
func (s *Snapshot) SwitchRule(i int) string { return onOff(s.switches[i].Active) }

// SampleRule returns the i-th sample's rule in words.
func (s *Snapshot) SampleRule(i int) string { return s.samples[i].Percent.String() + " %" }

// listWords joins up to five values and says how many more there are.
func listWords(vs []string) string {
	if len(vs) <= 5 {
		return strings.Join(vs, ", ")
	}
	return strings.Join(vs[:5], ", ") + fmt.Sprintf(" and %d more", len(vs)-5)
}
