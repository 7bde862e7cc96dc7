package main

import "slices"

// step is one measurement of a round: server srv carrying the traffic of
// scenario traffic, filed under scenario cell.
type step struct {
	srv     string
	traffic scenario
	cell    string // the scenario the measurement is filed under
	ref     bool   // a reference for the rotation goal, see roundPlan
}

// roundPlan orders the measurements of scenario s in round round. The
// goals compare two measurements, and this machine's neighbours change
// its speed within seconds, so each goal's pair is measured back to back,
// and one side of it twice, around the other, so that a drift between the
// two cancels out:
//
//   - (a) and (b), whose goals are flagproxy against the bare proxy: bare,
//     flagproxy, bare;
//   - (c), whose goal is flagproxy's throughput against its own in (a):
//     flagproxy with (a)'s traffic, flagproxy with (c)'s, flagproxy with
//     (a)'s again (when (a) is among the scenarios, for its returning
//     visitor's cookies).
//
// The other servers follow, in an order that rotates from round to round.
func roundPlan(round int, s scenario, servers []string, a *scenario) []step {
	has := func(srv string) bool { return slices.Contains(servers, srv) }
	var first []step
	switch {
	case (s.id == "a" || s.id == "b") && has("flagproxy"):
		first = []step{{srv: "bare"}, {srv: "flagproxy"}, {srv: "bare"}}
	case s.id == "c" && a != nil && has("flagproxy"):
		first = []step{{srv: "flagproxy", traffic: *a, ref: true}, {srv: "flagproxy"}, {srv: "flagproxy", traffic: *a, ref: true}}
	}
	var rest []string
	for _, srv := range servers {
		if !slices.ContainsFunc(first, func(st step) bool { return st.srv == srv }) {
			rest = append(rest, srv)
		}
	}
	out := first
	for i := range rest {
		out = append(out, step{srv: rest[(i+round)%len(rest)]})
	}
	for i := range out {
		if out[i].traffic.id == "" {
			out[i].traffic = s
		}
		out[i].cell = s.id
	}
	return out
}
