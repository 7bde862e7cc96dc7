package engine_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/flagproxy/flagproxy/engine"
)

// benchData is a realistic site: 200 waffle flags of mixed kinds, 50
// feature-flipper features, 50 FeatureFlags, 30 switches and 10 samples.
func benchData() engine.Data {
	d := engine.Data{
		Sources: []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper, engine.SourceFeatureFlag},
		Waffle:  engine.DefaultWaffleSettings(),
	}
	for i := range 200 {
		f := engine.WaffleFlag{Name: fmt.Sprintf("waffle_flag_%03d", i), Superusers: true}
		switch i % 8 {
		case 0:
			f.Everyone = engine.Yes
		case 1:
			f.Everyone = engine.No
		case 2:
			f.Percent = engine.PercentOf(int32(10 + i%900))
		case 3:
			f.Percent = engine.PercentOf(500)
			f.Rollout = true
		case 4:
			f.Testing = true
		case 5:
			f.Languages = "en, fr-ca, de"
			f.Percent = engine.PercentOf(250)
		case 6:
			for u := range 20 {
				f.Users = append(f.Users, strconv.Itoa(1000+u*7+i))
			}
			f.Groups = []int64{int64(i), int64(i + 1), 3}
		case 7:
			f.Staff = true
			f.Authenticated = i%16 == 7
		}
		d.WaffleFlags = append(d.WaffleFlags, f)
	}
	for i := range 50 {
		d.Features = append(d.Features, engine.Feature{Name: fmt.Sprintf("feature-%02d", i), Enabled: i%3 == 0})
	}
	for i := range 50 {
		ff := engine.FeatureFlag{Key: fmt.Sprintf("rollout-%02d", i), Enabled: i%5 != 0, RolloutPercent: int64(i * 2)}
		for u := range 10 {
			ff.AllowedUsers = append(ff.AllowedUsers, strconv.Itoa(500+u*13+i))
		}
		d.FeatureFlags = append(d.FeatureFlags, ff)
	}
	for i := range 30 {
		d.Switches = append(d.Switches, engine.Switch{Name: fmt.Sprintf("switch_%02d", i), Active: i%2 == 0})
	}
	for i := range 10 {
		d.Samples = append(d.Samples, engine.Sample{Name: fmt.Sprintf("sample_%d", i), Percent: engine.PercentOf(int32(i * 100))})
	}
	return d
}

func BenchmarkEvaluate(b *testing.B) {
	snap := mustSnapshot(b, benchData())
	// A returning visitor holds sticky cookies for a third of the
	// percentage flags and a test cookie; one dwft_ parameter is set.
	cookies := engine.Params{"sessionid": "abc", "csrftoken": "def", "dwft_waffle_flag_004": "True"}
	for i := 2; i < 200; i += 24 {
		cookies[fmt.Sprintf("dwf_waffle_flag_%03d", i)] = "True"
	}
	query := engine.Params{"page": "2", "dwft_waffle_flag_012": "1"}
	header := foldedHeader{"Accept": "text/html", "User-Agent": "bench"}
	subjects := []struct {
		name string
		subj engine.Subject
	}{
		{"anonymous", engine.Anonymous},
		{"authenticated", engine.Subject{UserID: "1041", Authenticated: true, Staff: true, Groups: []int64{3, 17, 42}}},
	}
	for _, s := range subjects {
		b.Run(s.name, func(b *testing.B) {
			req := &engine.Request{
				Subject:     s.subj,
				Query:       query,
				Cookies:     cookies,
				Header:      header,
				Language:    "fr-ca",
				HasLanguage: true,
				Overrides:   engine.Overrides{Session: map[string]bool{"feature-07": true}},
			}
			rnd := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				d := snap.Evaluate(req, rnd)
				if len(d.Flags) != snap.NumFlags() {
					b.Fatal("short result")
				}
			}
		})
	}
}

// BenchmarkParseCookies parses the Cookie header of a returning visitor
// of a site with 200 percentage flags: a session, a CSRF token, the
// renewal marker and 200 dwf_ cookies.
func BenchmarkParseCookies(b *testing.B) {
	header := "sessionid=abcdefgh12345678; csrftoken=x; flagproxy_waffle_renewed=1795247928"
	for i := range 200 {
		header += fmt.Sprintf("; dwf_waffle_flag_%03d=%s", i, []string{"True", "False"}[i%2])
	}
	reused := engine.Params{}
	b.ReportAllocs()
	for b.Loop() {
		if len(engine.ParseCookiesInto(reused, header)) != 203 {
			b.Fatal("short result")
		}
		clear(reused)
	}
}
