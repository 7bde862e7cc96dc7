package engine

import (
	"crypto/sha256"
	"slices"
)

// FeatureFlag is one row of the FeatureFlag model's table with the primary
// keys (as text) of its allowed users.
type FeatureFlag struct {
	Key            string   `json:"key"`
	Enabled        bool     `json:"enabled"`
	RolloutPercent int64    `json:"rollout_percent"`
	AllowedUsers   []string `json:"allowed_users,omitempty"`
}

// modelRule is one FeatureFlag row, indexed for deciding.
type modelRule struct {
	FeatureFlag
	allowed map[string]struct{}
}

func buildFeatureFlag(d *Data) (built, error) {
	var b built
	for _, f := range d.FeatureFlags {
		m := &modelRule{FeatureFlag: f, allowed: set(f.AllowedUsers)}
		m.AllowedUsers = slices.Clone(f.AllowedUsers)
		b.rules = append(b.rules, namedRule{f.Key, m})
	}
	return b, nil
}

// decide is the FeatureFlag model's is_enabled(key, user)
// (spec/featureflag-model.md §3), with "no user" meaning not authenticated.
func (m *modelRule) decide(r *Request, _ *evaluation) Decision {
	u := &r.Subject
	if !m.Enabled {
		return Decision{Reason: ReasonDisabled}
	}
	if u.Authenticated && u.UserID != "" {
		if _, ok := m.allowed[u.UserID]; ok {
			return Decision{On: true, Reason: ReasonUser}
		}
	}
	if m.RolloutPercent >= 100 {
		return Decision{On: true, Reason: ReasonRollout}
	}
	if !u.Authenticated || u.UserID == "" {
		return Decision{Reason: ReasonNoMatch}
	}
	return Decision{On: int64(Bucket(m.Key, u.UserID)) < m.RolloutPercent, Reason: ReasonBucket}
}

func (m *modelRule) digest(h *digester) {
	h.flag(m.Enabled)
	h.num(m.RolloutPercent)
	users := slices.Clone(m.AllowedUsers)
	slices.Sort(users)
	h.strs(users)
}

func (*modelRule) inputs() Inputs { return 0 }

// Bucket returns the FeatureFlag model's rollout bucket for a key and a
// user's primary key (as text): SHA-256 of "key:pk", read as a big-endian
// 256-bit integer, modulo 100.
func Bucket(key, userPK string) int {
	buf := make([]byte, 0, len(key)+1+len(userPK))
	buf = append(append(append(buf, key...), ':'), userPK...)
	sum := sha256.Sum256(buf)
	r := 0
	for _, b := range sum {
		r = (r*256 + int(b)) % 100
	}
	return r
}
