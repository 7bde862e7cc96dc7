package engine

import (
	"fmt"
	"strconv"
	"strings"
)

// explain walks waffle's Flag.is_active as decide does (spec/waffle.md
// §2.2).
func (w *waffleRule) explain(r *Request, x *explainer) {
	if w.ws.Override {
		if v, ok := get(r.Query, w.Name); ok {
			x.decide("WAFFLE_OVERRIDE", fmt.Sprintf("?%s=%s", w.Name, v), Decision{On: v == "1", Reason: ReasonOverride})
			return
		}
		x.step("WAFFLE_OVERRIDE", "no ?"+w.Name+" parameter")
	}
	switch w.Everyone {
	case Yes:
		x.decide("everyone", "yes", Decision{On: true, Reason: ReasonEveryone})
		return
	case No:
		x.decide("everyone", "no", Decision{Reason: ReasonEveryone})
		return
	}
	x.step("everyone", "unset")
	if w.explainTesting(r, x) || w.explainLanguage(r, x) || w.explainUser(&r.Subject, x) {
		return
	}
	if !w.Percent.Valid || w.Percent.Tenths <= 0 {
		x.step("percent", "unset")
		x.decide("result", "no rule matched", Decision{Reason: ReasonNoMatch})
		return
	}
	w.explainPercent(r, x)
}

// explainTesting is step 3, testing mode; it reports whether it decided.
func (w *waffleRule) explainTesting(r *Request, x *explainer) bool {
	if !w.Testing {
		x.step("testing", "off")
		return false
	}
	if v, ok := get(r.Query, w.testCookie); ok {
		x.decide("testing", fmt.Sprintf("?%s=%s", w.testCookie, v), Decision{On: v == "1", Reason: ReasonTestingQuery})
		return true
	}
	if v, ok := get(r.Header, w.testHeader); ok {
		x.decide("testing", fmt.Sprintf("header %s: %s", w.testHeader, v), Decision{On: v == "1", Reason: ReasonTestingHeader})
		return true
	}
	if v, ok := get(r.Cookies, w.testCookie); ok {
		x.decide("testing", fmt.Sprintf("cookie %s=%s", w.testCookie, v), Decision{On: v == "True", Reason: ReasonTestingCookie})
		return true
	}
	x.step("testing", "no "+w.testCookie+" parameter, header or cookie")
	return false
}

// explainLanguage is step 4, the languages column.
func (w *waffleRule) explainLanguage(r *Request, x *explainer) bool {
	switch {
	case w.languages == nil:
		return false
	case !r.HasLanguage:
		x.step("languages", "no request language (no LocaleMiddleware)")
	case strContains(w.languages, r.Language):
		x.decide("languages", r.Language+" is listed", Decision{On: true, Reason: ReasonLanguage})
		return true
	default:
		x.step("languages", fmt.Sprintf("%s is not among %s", r.Language, strings.Join(w.languages, ", ")))
	}
	return false
}

func strContains(xs []string, v string) bool {
	for _, s := range xs {
		if s == v {
			return true
		}
	}
	return false
}

// explainUser is step 5, in the order user() checks.
func (w *waffleRule) explainUser(u *Subject, x *explainer) bool {
	who := "visitor is anonymous"
	if u.Authenticated {
		who = "user " + u.UserID
	}
	checks := []struct {
		set, is     bool
		check, what string
		reason      Reason
	}{
		{w.Authenticated, u.Authenticated, "authenticated", "authenticated", ReasonAuthenticated},
		{w.Staff, u.Staff, "staff", "staff", ReasonStaff},
		{w.Superusers, u.Superuser, "superusers", "a superuser", ReasonSuperuser},
	}
	for _, c := range checks {
		if !c.set {
			continue
		}
		if c.is {
			x.decide(c.check, who+" is "+c.what, Decision{On: true, Reason: c.reason})
			return true
		}
		x.step(c.check, who+" is not "+c.what)
	}
	if len(w.users) > 0 {
		if _, ok := w.users[u.UserID]; ok && u.UserID != "" {
			x.decide("users", who+" is listed", Decision{On: true, Reason: ReasonUser})
			return true
		}
		x.step("users", who+" is not listed")
	}
	if len(w.groups) > 0 {
		for _, g := range u.Groups {
			if _, ok := w.groups[g]; ok {
				x.decide("groups", "in "+x.groupName(g), Decision{On: true, Reason: ReasonGroup})
				return true
			}
		}
		x.step("groups", "in none of them")
	}
	return false
}

// explainPercent is step 6: the dwf_ cookie, else a fresh roll.
func (w *waffleRule) explainPercent(r *Request, x *explainer) {
	if v, ok := get(r.Cookies, w.cookie); ok {
		x.decide("percent", fmt.Sprintf("%s %%: cookie %s=%s", w.Percent, w.cookie, v), Decision{On: v == "True", Reason: ReasonPercentCookie})
		return
	}
	what := fmt.Sprintf("%s %%: no %s cookie, so a fresh random roll (the cookie then keeps it)", w.Percent, w.cookie)
	if x.made.Reason == ReasonPercentRoll {
		x.decide("percent", what, x.made)
		return
	}
	x.step("percent", what+"; its outcome was replaced")
}

func (w *waffleRule) words(s *Snapshot) string {
	var parts []string
	if w.ws.Override {
		parts = append(parts, "?"+w.Name+"=1 or =0 (WAFFLE_OVERRIDE)")
	}
	switch w.Everyone {
	case Yes:
		return strings.Join(append(parts, "everyone"), ", ")
	case No:
		return strings.Join(append(parts, "no one (everyone: no)"), ", ")
	}
	if w.Testing {
		parts = append(parts, "testing mode ("+w.testCookie+")")
	}
	if w.languages != nil {
		parts = append(parts, "languages: "+strings.Join(w.languages, ", "))
	}
	for _, c := range []struct {
		set  bool
		name string
	}{{w.Authenticated, "authenticated users"}, {w.Staff, "staff"}, {w.Superusers, "superusers"}} {
		if c.set {
			parts = append(parts, c.name)
		}
	}
	if len(w.Users) > 0 {
		parts = append(parts, "users: "+listWords(w.Users))
	}
	if len(w.Groups) > 0 {
		names := make([]string, len(w.Groups))
		for i, g := range w.Groups {
			names[i] = groupWords(s, g)
		}
		parts = append(parts, "groups: "+listWords(names))
	}
	if w.Percent.Valid && w.Percent.Tenths > 0 {
		p := w.Percent.String() + " %"
		if w.Rollout {
			p += " (rollout)"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "no one"
	}
	return strings.Join(parts, ", ")
}

// groupWords names a group by its name, else by its id.
func groupWords(s *Snapshot, id int64) string {
	if n, ok := s.GroupName(id); ok && n != "" {
		return n
	}
	return "#" + strconv.FormatInt(id, 10)
}
