package main

import (
	"net/http"
	"testing"
)

func TestFlagsBytesCountsOnlyFlagproxyHeaders(t *testing.T) {
	h := http.Header{
		"X-Flagproxy-Flags":     {"{}"},
		"X-Flagproxy-Flags-1":   {"abc"},
		"X-Flagproxy-Signature": {"t=1,v1=ff"},
		"Cookie":                {"sessionid=x"},
	}
	// "X-Flagproxy-Flags: {}\r\n" is 17+2+2+2 bytes, and so on.
	want := int64(17+2+4) + int64(19+3+4) + int64(21+9+4)
	if got := flagsBytes(h); got != want {
		t.Errorf("flagsBytes = %d, want %d", got, want)
	}
	if got := flagsBytes(http.Header{"Accept": {"*/*"}}); got != 0 {
		t.Errorf("flagsBytes without flagproxy's headers = %d, want 0", got)
	}
}
