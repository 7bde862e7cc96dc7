package engine_test

import (
	"fmt"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// fixedRoll is a Rand that always returns the same number. Production code
// passes a math/rand/v2 *Rand.
type fixedRoll float64

func (r fixedRoll) Float64() float64 { return float64(r) }

// An anonymous visitor without cookies: the percentage flag is rolled and
// made sticky with waffle's dwf_ cookie, the testing flag reads its dwft_
// parameter, and the FeatureFlag key is off because anonymous visitors are
// never bucketed.
func ExampleSnapshot_Evaluate() {
	snap, err := engine.NewSnapshot(engine.Data{
		Sources: []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper, engine.SourceFeatureFlag},
		Waffle:  engine.DefaultWaffleSettings(),
		WaffleFlags: []engine.WaffleFlag{
			{Name: "new_nav", Everyone: engine.Yes},
			{Name: "pricing_v2", Percent: engine.PercentOf(250)}, // 25.0 %
			{Name: "qa_only", Testing: true},
		},
		Features:     []engine.Feature{{Name: "search", Enabled: true}},
		FeatureFlags: []engine.FeatureFlag{{Key: "new-checkout", Enabled: true, RolloutPercent: 50}},
		Switches:     []engine.Switch{{Name: "maintenance", Active: false}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	req := &engine.Request{
		Subject: engine.Anonymous,
		Query:   engine.ParseQuery("dwft_qa_only=1"),
	}
	d := snap.Evaluate(req, fixedRoll(0.1)) // a roll of 10.0 on waffle's 0-100 scale

	for i, dec := range d.Flags {
		fmt.Printf("%-12s %-5v %s\n", snap.FlagName(i), dec.On, dec.Reason)
	}
	for i, dec := range d.Switches {
		fmt.Printf("%-12s %-5v %s\n", snap.SwitchName(i), dec.On, dec.Reason)
	}
	for _, c := range d.Cookies {
		fmt.Printf("Set-Cookie: %s=%s max-age=%d secure=%v\n", c.Name, c.Value, c.MaxAge, c.Secure)
	}
	// Output:
	// new-checkout false no-match
	// new_nav      true  everyone
	// pricing_v2   true  percent-roll
	// qa_only      true  testing-query
	// search       true  active
	// maintenance  false active
	// Set-Cookie: dwf_pricing_v2=True max-age=2592000 secure=true
	// Set-Cookie: dwft_qa_only=True max-age=0 secure=false
}

// A Store hands the current snapshot to request handlers. Publishing a
// snapshot with the same content keeps the pointer readers already hold and
// only records the time of the successful load.
func ExampleStore() {
	var store engine.Store
	fmt.Println("before the first load:", store.Load() == nil)

	data := engine.Data{
		Sources:  []engine.Source{engine.SourceWaffle},
		Waffle:   engine.DefaultWaffleSettings(),
		Switches: []engine.Switch{{Name: "maintenance", Active: true}},
	}
	first, _ := engine.NewSnapshot(data)
	store.Publish(first, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

	same, _ := engine.NewSnapshot(data) // the next poll read the same rows
	store.Publish(same, time.Date(2026, 1, 2, 3, 4, 35, 0, time.UTC))
	fmt.Println("same content keeps the pointer:", store.Load() == first)
	fmt.Println("loaded at:", store.LoadedAt().UTC().Format(time.RFC3339))

	data.Switches[0].Active = false
	changed, _ := engine.NewSnapshot(data)
	store.Publish(changed, time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC))
	fmt.Println("new content is swapped in:", store.Load() == changed)
	// Output:
	// before the first load: true
	// same content keeps the pointer: true
	// loaded at: 2026-01-02T03:04:35Z
	// new content is swapped in: true
}
