//go:build linux

package ioloop

import (
	"math/rand"
	"testing"
)

// The transport's record framing (what lets fillTLS skip a Read) counts
// exactly the complete records in a stream of TLS records, however the
// stream is cut: every split point, empty bodies, bodies of 16 KiB and
// more, headers cut anywhere.
func TestTLSTransportFramesRecords(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var stream []byte
	var ends []int // offsets where each record ends
	for i := 0; i < 300; i++ {
		n := rng.Intn(40)
		switch i % 7 {
		case 0:
			n = 0
		case 1:
			n = 16384 + 256
		case 2:
			n = 255 + rng.Intn(3) // lengths whose low byte wraps
		}
		stream = append(stream, 23, 3, 3, byte(n>>8), byte(n))
		stream = append(stream, make([]byte, n)...)
		ends = append(ends, len(stream))
	}
	complete := func(off int) int {
		k := 0
		for k < len(ends) && ends[k] <= off {
			k++
		}
		return k
	}
	for trial := 0; trial < 200; trial++ {
		var tr tlsTransport
		off := 0
		for off < len(stream) {
			n := 1 + rng.Intn(1+rng.Intn(20000))
			if trial == 0 {
				n = 1 // every byte on its own
			}
			n = min(n, len(stream)-off)
			tr.frame(stream[off : off+n])
			off += n
			if tr.records != complete(off) {
				t.Fatalf("trial %d: after %d bytes, %d records counted, %d complete", trial, off, tr.records, complete(off))
			}
		}
		if tr.hdrGot != 0 || tr.body != 0 {
			t.Fatalf("trial %d: at the end, mid-record state %d/%d", trial, tr.hdrGot, tr.body)
		}
	}
}
