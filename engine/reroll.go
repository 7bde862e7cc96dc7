package engine

// Draw gives the value in [0, 1) that stands for one random draw: the roll
// of the waffle flag called name (sample false) or the draw of the sample
// called name.
type Draw func(name string, sample bool) float64

// Reroll replaces the outcome of every fresh random draw in d, which
// Evaluate made on s, with the outcome of draw: a waffle percentage flag
// decided by a roll (ReasonPercentRoll) is on when draw(name, false)*100 <=
// percent, and a sample when draw(name, true)*100 <= percent, the
// comparison waffle makes with its own roll. Nothing else changes.
//
// The result is what Evaluate decides when its Rand returns draw's value
// for each flag or sample it rolls for: Evaluate draws at exactly those
// steps (step 6 of a waffle flag that has no dwf_ cookie, and every
// sample), and an override that comes after a roll replaces its reason, so
// an overridden flag is left as the override decided it. Evaluate's Rand
// cannot do this itself, because it is not told which flag it rolls for.
// d.Cookies keep the values of the first draws: a caller that rerolls does
// not write cookies.
func (s *Snapshot) Reroll(d *Decisions, draw Draw) {
	for i := range d.Flags {
		if i >= len(s.flags) || d.Flags[i].Reason != ReasonPercentRoll {
			continue
		}
		if w, ok := s.flags[i].rule.(*waffleRule); ok {
			d.Flags[i].On = draw(w.Name, false)*100 <= w.Percent.Float()
		}
	}
	for i := range d.Samples {
		if i >= len(s.samples) || d.Samples[i].Reason != ReasonSample {
			continue
		}
		d.Samples[i].On = draw(s.samples[i].Name, true)*100 <= s.samples[i].Percent.Float()
	}
}

// FlagPercent returns the percentage of the i-th flag when it is a waffle
// flag whose percent column is set and positive (the flags that may roll).
func (s *Snapshot) FlagPercent(i int) (float64, bool) {
	w, ok := s.flags[i].rule.(*waffleRule)
	if !ok || !w.Percent.Valid || w.Percent.Tenths <= 0 {
		return 0, false
	}
	return w.Percent.Float(), true
}

// SamplePercent returns the percentage of the i-th sample.
func (s *Snapshot) SamplePercent(i int) float64 { return s.samples[i].Percent.Float() }
