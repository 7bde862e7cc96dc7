package engine_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"testing"

	"github.com/flagproxy/flagproxy/engine"
)

// bucketVectorsPath is a copy of the specification's vector file
// (shared/spec/vectors/featureflag-buckets.json), kept in the repository so
// the tests run on a fresh clone; TestBucketVectorsMatchSpec keeps the copy
// honest where the specification is checked out beside the repository.
const (
	bucketVectorsPath = "testdata/featureflag-buckets.json"
	specVectorsPath   = "../../shared/spec/vectors/featureflag-buckets.json"
)

func TestBucketVectorsMatchSpec(t *testing.T) {
	spec, err := os.ReadFile(specVectorsPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s not checked out beside the repository", specVectorsPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	ours, err := os.ReadFile(bucketVectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(spec, ours) {
		t.Errorf("%s differs from %s: copy the specification's file again", bucketVectorsPath, specVectorsPath)
	}
}

type bucketVector struct {
	Key          string          `json:"key"`
	UserPK       json.RawMessage `json:"user_pk"`
	HashedString string          `json:"hashed_string"`
	SHA256Hex    string          `json:"sha256_hex"`
	Bucket       int             `json:"bucket"`
}

type resolutionCase struct {
	Description string `json:"description"`
	Flag        *struct {
		Key            string `json:"key"`
		Enabled        bool   `json:"enabled"`
		RolloutPercent int64  `json:"rollout_percent"`
	} `json:"flag"`
	UserPK             json.RawMessage `json:"user_pk"`
	UserInAllowedUsers bool            `json:"user_in_allowed_users"`
	Expected           bool            `json:"expected"`
}

type bucketVectorFile struct {
	Vectors         []bucketVector   `json:"vectors"`
	ExtraVectors    []bucketVector   `json:"extra_vectors"`
	ResolutionCases []resolutionCase `json:"resolution_cases"`
}

func readBucketVectors(t *testing.T) bucketVectorFile {
	t.Helper()
	raw, err := os.ReadFile(bucketVectorsPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s not found", bucketVectorsPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	var f bucketVectorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("decode %s: %v", bucketVectorsPath, err)
	}
	return f
}

// userPKText renders a vector's user_pk the way Python's str() does for
// the primary key: null is "None", a number is decimal, a string is as is.
func userPKText(raw json.RawMessage) (string, error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "None", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return "", fmt.Errorf("user_pk %s: %w", raw, err)
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return "", fmt.Errorf("user_pk %s is not an integer: %w", raw, err)
	}
	return strconv.FormatInt(i, 10), nil
}

func TestBucketVectors(t *testing.T) {
	f := readBucketVectors(t)
	if len(f.Vectors) != 20 {
		t.Errorf("%d vectors, the spec (featureflag-model.md §7) promises exactly 20", len(f.Vectors))
	}
	if len(f.ExtraVectors) == 0 {
		t.Error("no extra_vectors")
	}
	check := func(t *testing.T, v bucketVector) {
		pk, err := userPKText(v.UserPK)
		if err != nil {
			t.Fatal(err)
		}
		// The file's own intermediate values pin the recipe, so a failure
		// below says whether the rendering or the bucket is wrong.
		if s := v.Key + ":" + pk; s != v.HashedString {
			t.Errorf("rendered %q, the vector hashes %q", s, v.HashedString)
		}
		if sum := sha256.Sum256([]byte(v.HashedString)); hex.EncodeToString(sum[:]) != v.SHA256Hex {
			t.Errorf("sha256(%q) = %x, the vector says %s", v.HashedString, sum, v.SHA256Hex)
		}
		if got := engine.Bucket(v.Key, pk); got != v.Bucket {
			t.Errorf("Bucket(%q, %q) = %d, want %d", v.Key, pk, got, v.Bucket)
		}
	}
	for i, v := range f.Vectors {
		t.Run(fmt.Sprintf("vectors[%d]", i), func(t *testing.T) { check(t, v) })
	}
	for i, v := range f.ExtraVectors {
		t.Run(fmt.Sprintf("extra_vectors[%d]", i), func(t *testing.T) { check(t, v) })
	}
}

// TestFeatureFlagResolutionVectors runs the shared resolution_cases straight
// from the vector file; featureflag-model.json transcribes the same cases
// with reasons.
func TestFeatureFlagResolutionVectors(t *testing.T) {
	f := readBucketVectors(t)
	if len(f.ResolutionCases) == 0 {
		t.Fatal("no resolution_cases")
	}
	for i, rc := range f.ResolutionCases {
		t.Run(fmt.Sprintf("%d_%s", i, rc.Description), func(t *testing.T) {
			subj := engine.Anonymous
			if !bytes.Equal(bytes.TrimSpace(rc.UserPK), []byte("null")) {
				pk, err := userPKText(rc.UserPK)
				if err != nil {
					t.Fatal(err)
				}
				subj = engine.Subject{UserID: pk, Authenticated: true}
			}
			d := engine.Data{Sources: []engine.Source{engine.SourceFeatureFlag}, Waffle: engine.DefaultWaffleSettings()}
			key := "new-checkout"
			if rc.Flag != nil {
				key = rc.Flag.Key
				ff := engine.FeatureFlag{Key: key, Enabled: rc.Flag.Enabled, RolloutPercent: rc.Flag.RolloutPercent}
				if rc.UserInAllowedUsers {
					ff.AllowedUsers = []string{subj.UserID}
				}
				d.FeatureFlags = []engine.FeatureFlag{ff}
			}
			snap, err := engine.NewSnapshot(d)
			if err != nil {
				t.Fatal(err)
			}
			i, ok := snap.FlagIndex(key)
			if rc.Flag == nil {
				// A missing key is left to the Django side, which says False.
				if ok || rc.Expected {
					t.Errorf("missing flag: known %v, expected %v; want unknown and false", ok, rc.Expected)
				}
				return
			}
			if !ok {
				t.Fatalf("flag %q not in the snapshot", key)
			}
			got := snap.Evaluate(&engine.Request{Subject: subj}, noRolls{t})
			if got.Flags[i].On != rc.Expected {
				t.Errorf("%q for user %s = %v (%s), want %v", key, rc.UserPK, got.Flags[i].On, got.Flags[i].Reason, rc.Expected)
			}
		})
	}
}

// noRolls is a Rand for evaluations that must not roll.
type noRolls struct{ t testing.TB }

func (r noRolls) Float64() float64 {
	r.t.Helper()
	r.t.Error("unexpected roll")
	return 0
}
