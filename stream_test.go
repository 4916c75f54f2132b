//go:build linux

package ioloop

import (
	"bytes"
	"testing"
)

// White-box tests of the stream's buffer bookkeeping; behaviour on real
// sockets is tested in tests/.

func TestWriteQueueCoalescesAndRecyclesChunks(t *testing.T) {
	var w writeState
	var want []byte
	for i := 0; i < 100; i++ { // small writes share chunks
		p := bytes.Repeat([]byte{byte(i)}, 1000)
		w.enqueue(p)
		want = append(want, p...)
	}
	big := bytes.Repeat([]byte{0xee}, 3*writeChunk) // a chunk of its own
	w.enqueue(big)
	want = append(want, big...)
	if w.queued != len(want) {
		t.Fatalf("queued %d; want %d", w.queued, len(want))
	}
	var got []byte
	for _, c := range w.chunks[w.head:] {
		got = append(got, c...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("queue content differs from what was written")
	}
	if n := len(w.chunks); n != (100*1000+writeChunk-1)/writeChunk+1 {
		t.Fatalf("%d chunks for 100 KB of small writes and one large one", n)
	}
	// Consume in odd steps, checking the head each time.
	off := 0
	for _, step := range []int{1, 999, writeChunk, 12345, len(want)} {
		step = min(step, w.queued)
		w.consume(step)
		off += step
		if w.queued != len(want)-off || w.done != uint64(off) {
			t.Fatalf("after %d: queued %d done %d", off, w.queued, w.done)
		}
		if w.queued > 0 && w.chunks[w.head][w.off] != want[off] {
			t.Fatalf("after %d: head byte differs", off)
		}
	}
	if len(w.chunks) != 0 || w.head != 0 || len(w.free) == 0 || len(w.free) > maxFreeChunks {
		t.Fatalf("empty queue: %d chunks, head %d, %d free", len(w.chunks), w.head, len(w.free))
	}
	for _, c := range w.free {
		if cap(c) != writeChunk {
			t.Fatalf("recycled a chunk of cap %d", cap(c))
		}
	}
}

func TestReadUntilResumesSearchWhereItStopped(t *testing.T) {
	s := newStream(nil, -1, false, nil)
	s.read.buf = make([]byte, 64)
	s.read.op, s.read.delim, s.read.n = opUntil, []byte("\r\n\r\n"), 64
	feed := func(p string) {
		s.read.end += copy(s.read.buf[s.read.end:], p)
	}
	feed("GET / HTTP/1.1\r\n\r")
	if _, _, ok := s.match(); ok {
		t.Fatal("matched an incomplete delimiter")
	}
	if s.read.scan != s.read.end-s.read.start-3 {
		t.Fatalf("scan resumes at %d; want %d (a split delimiter must still be found)", s.read.scan, s.read.end-3)
	}
	feed("\n")
	n, err, ok := s.match()
	if !ok || err != nil || n != s.read.end {
		t.Fatalf("match = %d, %v, %v; want the whole head", n, err, ok)
	}
}

func TestReadUntilLimitCountsTheDelimiter(t *testing.T) {
	s := newStream(nil, -1, false, nil)
	s.read.buf = []byte("abc\r\n")
	s.read.end = 5
	s.read.op, s.read.delim, s.read.n = opUntil, []byte("\r\n"), 4
	if _, err, ok := s.match(); !ok || err != ErrDelimiterNotFound {
		t.Fatalf("delimiter ending past max: %v, %v", err, ok)
	}
	s.read.n, s.read.scan = 5, 0
	if n, err, ok := s.match(); !ok || err != nil || n != 5 {
		t.Fatalf("delimiter ending at max: %d, %v, %v", n, err, ok)
	}
}
