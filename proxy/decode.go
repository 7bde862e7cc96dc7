package proxy

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ErrNoFlagsHeader is returned by Decode when the request carries no
// FlagsHeader.
var ErrNoFlagsHeader = errors.New("no flags header")

// ErrMalformedFlagsHeader is wrapped by every error Decode returns for a
// header that is present but not valid.
var ErrMalformedFlagsHeader = errors.New("malformed flags header")

// maxDecodedSize bounds the decompressed JSON Decode accepts.
const maxDecodedSize = 16 << 20

// Payload is the content of the flags header.
type Payload struct {
	Flags    map[string]bool   `json:"flags"`
	Switches map[string]bool   `json:"switches"`
	Samples  map[string]bool   `json:"samples"`
	Sources  map[string]string `json:"sources"`
	// Conflicts is nil when the snapshot has no conflicts.
	Conflicts map[string][]string `json:"conflicts,omitempty"`
	// Identity is "stale" when the visitor was recognised from cache past
	// its lifetime during a database outage, else "".
	Identity string `json:"identity,omitempty"`
	Version  string `json:"version"`
	State    string `json:"state"`
}

// pointer is the FlagsHeader value of the large form.
type pointer struct {
	Encoding string `json:"encoding"`
	Parts    int    `json:"parts"`
	SHA256   string `json:"sha256"`
	Version  string `json:"version"`
	State    string `json:"state"`
}

// Decode reads the flags header from h, in either form (see the package
// documentation), checking the digest of a large value. It does not check
// the signature. Maps that the header holds as empty objects are returned
// empty, not nil.
func Decode(h http.Header) (Payload, error) {
	vs := h.Values(FlagsHeader)
	switch {
	case len(vs) == 0:
		return Payload{}, ErrNoFlagsHeader
	case len(vs) > 1:
		return Payload{}, fmt.Errorf("%w: %d %s lines", ErrMalformedFlagsHeader, len(vs), FlagsHeader)
	}
	var ptr pointer
	if err := json.Unmarshal([]byte(vs[0]), &ptr); err != nil {
		return Payload{}, fmt.Errorf("%w: %w", ErrMalformedFlagsHeader, err)
	}
	raw := []byte(vs[0])
	if ptr.Encoding != "" {
		var err error
		if raw, err = joinParts(h, ptr); err != nil {
			return Payload{}, fmt.Errorf("%w: %w", ErrMalformedFlagsHeader, err)
		}
	}
	var p Payload
	if err := json.Unmarshal(raw, &p); err != nil {
		return Payload{}, fmt.Errorf("%w: %w", ErrMalformedFlagsHeader, err)
	}
	switch {
	case p.Flags == nil || p.Switches == nil || p.Samples == nil || p.Sources == nil:
		return Payload{}, fmt.Errorf("%w: missing member", ErrMalformedFlagsHeader)
	case p.State != StateOK && p.State != StateStale && p.State != StateUnavailable:
		return Payload{}, fmt.Errorf("%w: unknown state %q", ErrMalformedFlagsHeader, p.State)
	case ptr.Encoding != "" && (p.Version != ptr.Version || p.State != ptr.State):
		return Payload{}, fmt.Errorf("%w: pointer and parts disagree", ErrMalformedFlagsHeader)
	}
	return p, nil
}

// joinParts reassembles and checks the JSON of a large value.
func joinParts(h http.Header, ptr pointer) ([]byte, error) {
	if ptr.Encoding != Encoding {
		return nil, fmt.Errorf("unknown encoding %q", ptr.Encoding)
	}
	if ptr.Parts < 1 || ptr.Parts > MaxParts {
		return nil, fmt.Errorf("%d parts", ptr.Parts)
	}
	want, err := hex.DecodeString(ptr.SHA256)
	if err != nil || len(want) != sha256.Size {
		return nil, errors.New("bad sha256")
	}
	var text strings.Builder
	for i := 1; i <= ptr.Parts; i++ {
		vs := h.Values(partHeader(i))
		if len(vs) != 1 || vs[0] == "" {
			return nil, fmt.Errorf("part %d: %d values", i, len(vs))
		}
		text.WriteString(vs[0])
	}
	zipped, err := base64.RawURLEncoding.Strict().DecodeString(text.String())
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxDecodedSize+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxDecodedSize {
		return nil, errors.New("decompressed value too large")
	}
	if sum := sha256.Sum256(raw); !bytes.Equal(sum[:], want) {
		return nil, errors.New("sha256 mismatch")
	}
	return raw, nil
}
