package djangodb

import (
	"bytes"
	"compress/zlib"
	"errors"
	"io"
	"sync"
)

// inflaters keeps zlib readers for reuse: a new one allocates a 32 KB
// window, which for a burst of sessions never seen (after a restart) is
// most of the memory and much of the CPU their lookup costs.
var inflaters sync.Pool

// inflate decompresses zlib data of at most maxSessionBytes.
func inflate(data []byte) ([]byte, error) {
	src := bytes.NewReader(data)
	var zr io.ReadCloser
	if pooled, ok := inflaters.Get().(io.ReadCloser); ok {
		if err := pooled.(zlib.Resetter).Reset(src, nil); err != nil {
			return nil, err
		}
		zr = pooled
	} else {
		var err error
		if zr, err = zlib.NewReader(src); err != nil {
			return nil, err
		}
	}
	defer inflaters.Put(zr)
	out, err := io.ReadAll(io.LimitReader(zr, maxSessionBytes+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxSessionBytes {
		return nil, errors.New("session too large")
	}
	return out, nil
}
