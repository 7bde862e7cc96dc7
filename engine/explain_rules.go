package engine

import (
	"fmt"
	"strings"

	"github.com/flagproxy/flagproxy/engine/internal/pydatetime"
)

func (f featureRule) explain(_ *Request, x *explainer) {
	x.decide("enabled", fmt.Sprint(f.enabled), Decision{On: f.enabled, Reason: ReasonActive})
}

func (f featureRule) words(*Snapshot) string {
	if f.enabled {
		return "enabled"
	}
	return "disabled"
}

// explain walks is_enabled(key, user) as decide does.
func (m *modelRule) explain(r *Request, x *explainer) {
	u := &r.Subject
	if !m.Enabled {
		x.decide("enabled", "false", Decision{Reason: ReasonDisabled})
		return
	}
	x.step("enabled", "true")
	anonymous := !u.Authenticated || u.UserID == ""
	if len(m.allowed) > 0 {
		if _, ok := m.allowed[u.UserID]; ok && !anonymous {
			x.decide("allowed users", "user "+u.UserID+" is listed", Decision{On: true, Reason: ReasonUser})
			return
		}
		x.step("allowed users", "visitor is not listed")
	}
	if m.RolloutPercent >= 100 {
		x.decide("rollout", fmt.Sprintf("%d %%", m.RolloutPercent), Decision{On: true, Reason: ReasonRollout})
		return
	}
	if anonymous {
		x.decide("rollout", fmt.Sprintf("%d %%, but an anonymous visitor has no bucket", m.RolloutPercent), Decision{Reason: ReasonNoMatch})
		return
	}
	b := Bucket(m.Key, u.UserID)
	cmpWord := "<"
	if int64(b) >= m.RolloutPercent {
		cmpWord = "≥"
	}
	x.decide("bucket", fmt.Sprintf("sha256(%q) mod 100 = %d %s %d %%", m.Key+":"+u.UserID, b, cmpWord, m.RolloutPercent),
		Decision{On: int64(b) < m.RolloutPercent, Reason: ReasonBucket})
}

func (m *modelRule) words(*Snapshot) string {
	if !m.Enabled {
		return "disabled"
	}
	var parts []string
	if len(m.AllowedUsers) > 0 {
		parts = append(parts, "users: "+listWords(m.AllowedUsers))
	}
	switch {
	case m.RolloutPercent >= 100:
		parts = append(parts, "everyone (100 %)")
	case m.RolloutPercent > 0:
		parts = append(parts, fmt.Sprintf("%d %% of users (bucket)", m.RolloutPercent))
	}
	if len(parts) == 0 {
		return "no one"
	}
	return strings.Join(parts, ", ")
}

// explain walks check_state as decide does: every condition, then the
// combination.
func (f *djangoFlagRule) explain(r *Request, x *explainer) {
	if f.raises != "" {
		x.decide("error", "the library raises "+f.raises+"; flagproxy decides it off", Decision{Reason: ReasonError})
		return
	}
	if len(f.conds) == 0 {
		x.decide("conditions", "none", Decision{Reason: ReasonNoMatch})
		return
	}
	var d Decision
	anyOptional, allRequired, byQuery := !f.hasOptional, true, false
	var now pydatetime.Value
	for i := range f.conds {
		c := &f.conds[i]
		ok, err := c.eval(r, f, &now)
		if err != nil {
			x.decide(condWords(f.raw[i]), "raises "+err.Error(), Decision{Reason: ReasonError})
			return
		}
		x.step(condWords(f.raw[i]), fmt.Sprint(ok))
		if c.required {
			allRequired = allRequired && ok
		} else {
			anyOptional = anyOptional || ok
		}
		byQuery = byQuery || (ok && c.kind == condParameter)
	}
	switch {
	case !anyOptional:
		x.decide("result", "no optional condition is true", Decision{Reason: ReasonNoMatch})
		return
	case !allRequired:
		x.decide("result", "a required condition is false", Decision{Reason: ReasonNoMatch})
		return
	case byQuery:
		d = Decision{On: true, Reason: ReasonParameter}
	default:
		d = Decision{On: true, Reason: ReasonConditions}
	}
	x.decide("result", "the conditions are met", d)
}

func (f *djangoFlagRule) words(*Snapshot) string {
	if f.raises != "" {
		return "raises " + f.raises + " (off)"
	}
	if len(f.raw) == 0 {
		return "no conditions (off)"
	}
	parts := make([]string, len(f.raw))
	for i, c := range f.raw {
		parts[i] = condWords(c)
	}
	return strings.Join(parts, "; ")
}

// condWords describes one condition: "parameter beta=1 (required)".
func condWords(c rawCondition) string {
	name := c.kind
	if c.nameNull {
		name = "(not a string)"
	}
	v := c.value.str
	switch c.value.kind {
	case vBool:
		v = pyBool(c.value.truthy)
	case vNone:
		v = "None"
	case vOther:
		v = "<" + c.value.str + ">"
	}
	w := name + " " + v
	if c.required {
		w += " (required)"
	}
	return w
}
