package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// digester feeds values into the snapshot's version hash, each one framed
// so that no two different sequences of values hash alike.
type digester struct {
	h   hash.Hash
	buf [8]byte
}

func newDigester() *digester { return &digester{h: sha256.New()} }

func (d *digester) str(v string) {
	d.num(int64(len(v)))
	d.h.Write([]byte(v))
}

func (d *digester) num(v int64) {
	binary.BigEndian.PutUint64(d.buf[:], uint64(v))
	d.h.Write(d.buf[:])
}

func (d *digester) flag(b bool) {
	if b {
		d.num(1)
	} else {
		d.num(0)
	}
}

// strs hashes a list of strings in the given order.
func (d *digester) strs(vs []string) {
	d.num(int64(len(vs)))
	for _, v := range vs {
		d.str(v)
	}
}

// sum returns 16 hex digits of the digest.
func (d *digester) sum() string { return hex.EncodeToString(d.h.Sum(nil)[:8]) }
