package djangodb

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func deflate(data []byte) []byte {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write(data)
	w.Close()
	return z.Bytes()
}

// TestInflateReusesReadersSafely: readers taken from the pool, after
// streams of other lengths and after refused ones, still give each stream
// its own content, also concurrently; corrupt, truncated and oversized
// streams are refused.
func TestInflateReusesReadersSafely(t *testing.T) {
	big := deflate(bytes.Repeat([]byte{'a'}, maxSessionBytes+1))
	good := deflate([]byte(`{"_auth_user_id": "1"}`))
	refused := map[string][]byte{
		"corrupt":   append([]byte{0x78, 0x9c, 0xff, 0xff}, good[4:]...),
		"truncated": good[:len(good)-3],
		"not zlib":  []byte("plain text"),
		"too large": big,
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				want := []byte(fmt.Sprintf(`{"_auth_user_id": "%d", "pad": "%s"}`, i, strings.Repeat("x", (g*37+i*11)%3000)))
				got, err := inflate(deflate(want))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("stream %d/%d: %q, %v", g, i, got, err)
					return
				}
				if i%40 != 0 {
					continue
				}
				for name, data := range refused {
					if out, err := inflate(data); err == nil {
						t.Errorf("%s stream accepted: %d bytes", name, len(out))
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkLoadsCompressed verifies and decodes a compressed session as a
// lookup of a session not seen before does.
func BenchmarkLoadsCompressed(b *testing.B) {
	data := djangoDumps(b, map[string]any{"_auth_user_id": "12345", "_auth_user_backend": backendModel,
		"_auth_user_hash": strings.Repeat("0123456789abcdef", 4), "cart": strings.Repeat("item ", 40)},
		"django.contrib.sessions.SessionStore", "k", time.Now(), true)
	if !strings.HasPrefix(data, ".") {
		b.Fatal("not compressed")
	}
	s := signer{keys: []string{"k"}, algs: []algorithm{sha256Alg}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.loads(data, "django.contrib.sessions.SessionStore", noMaxAge, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
