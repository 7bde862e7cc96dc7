package engine

// Feature is one row of django-feature-flipper's featureflipper_feature.
type Feature struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	// Description is the row's description: informative only, never
	// part of a decision or of the snapshot's version.
	Description string `json:"description,omitempty"`
}

// featureRule is a feature-flipper feature: its enabled column decides
// (spec/feature-flipper.md §3); the URL and session overrides are applied
// by Evaluate for every source alike.
type featureRule struct {
	enabled     bool
	description string // informative only
}

func buildFeatureFlipper(d *Data) (built, error) {
	var b built
	for _, f := range d.Features {
		b.rules = append(b.rules, namedRule{f.Name, featureRule{f.Enabled, f.Description}})
	}
	return b, nil
}

func (f featureRule) decide(*Request, *evaluation) Decision {
	return Decision{On: f.enabled, Reason: ReasonActive}
}

func (f featureRule) digest(h *digester) { h.flag(f.enabled) }

func (featureRule) inputs() Inputs { return 0 }
