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
	sh := &streamShared{}
	var want []byte
	for i := 0; i < 100; i++ { // small writes share chunks
		p := bytes.Repeat([]byte{byte(i)}, 1000)
		w.enqueue(sh, p)
		want = append(want, p...)
	}
	big := bytes.Repeat([]byte{0xee}, 3*writeChunk) // spans several chunks
	w.enqueue(sh, big)
	want = append(want, big...)
	if w.queued != len(want) {
		t.Fatalf("queued %d; want %d", w.queued, len(want))
	}
	var got []byte
	for i, c := range w.chunks[w.head:] {
		got = append(got, c...)
		// Chunks double from the first write's size up to writeChunk.
		if wantCap := min(minWriteChunk<<i, writeChunk); cap(c) != wantCap {
			t.Fatalf("chunk %d has cap %d; want %d", i, cap(c), wantCap)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("queue content differs from what was written")
	}
	// Consume in odd steps, checking the head each time.
	off := 0
	for _, step := range []int{1, 999, writeChunk, 12345, len(want)} {
		step = min(step, w.queued)
		w.consume(sh, step)
		off += step
		if w.queued != len(want)-off || w.done != uint64(off) {
			t.Fatalf("after %d: queued %d done %d", off, w.queued, w.done)
		}
		if w.queued > 0 && w.chunks[w.head][w.off] != want[off] {
			t.Fatalf("after %d: head byte differs", off)
		}
	}
	if len(w.chunks) != 0 || w.head != 0 {
		t.Fatalf("empty queue: %d chunks, head %d", len(w.chunks), w.head)
	}
	// Every chunk went back to the loop's pools; the next queue reuses
	// them instead of allocating.
	pooled := 0
	for c, p := range sh.pools {
		for _, b := range p {
			if cap(b) != 1<<(minBufShift+c) {
				t.Fatalf("pool %d holds a buffer of cap %d", c, cap(b))
			}
			pooled += cap(b)
		}
	}
	if pooled == 0 {
		t.Fatal("no chunk was given back to the pools")
	}
	if n := testing.AllocsPerRun(100, func() {
		w.enqueue(sh, big)
		w.consume(sh, w.queued)
	}); n != 0 {
		t.Fatalf("a queue filled and emptied again allocates %v times", n)
	}
}

func TestWriteQueueAppendsToTheTailChunk(t *testing.T) {
	var w writeState
	sh := &streamShared{}
	if w.appendToTail([]byte("x"), 0) {
		t.Fatal("appended to a queue without chunks")
	}
	w.enqueue(sh, []byte("first "))
	room := cap(w.chunks[0]) - len(w.chunks[0])
	if !w.appendToTail([]byte("second"), 0) {
		t.Fatal("did not append what fits")
	}
	if w.appendToTail([]byte("third"), w.queued+4) {
		t.Fatal("appended past the queue's cap")
	}
	if w.appendToTail(make([]byte, room), 0) {
		t.Fatal("appended more than the tail chunk's room")
	}
	// (enqueue leaves accepted to its caller, queueWrite; appendToTail
	// is a whole Write and counts it.)
	if got := string(w.chunks[0]); got != "first second" || w.queued != 12 || w.accepted != 6 {
		t.Fatalf("queue %q, queued %d, accepted %d", got, w.queued, w.accepted)
	}
}

func TestBufferPoolClasses(t *testing.T) {
	for _, tc := range []struct{ n, class, size int }{
		{0, 0, 512}, {1, 0, 512}, {512, 0, 512}, {513, 1, 1024},
		{4096, 3, 4096}, {4097, 4, 8192}, {maxPooledBuf, numBufClasses - 1, maxPooledBuf},
		{maxPooledBuf + 1, -1, maxPooledBuf + 1},
	} {
		if c, size := bufClass(tc.n); c != tc.class || size != tc.size {
			t.Errorf("bufClass(%d) = %d, %d; want %d, %d", tc.n, c, size, tc.class, tc.size)
		}
	}
	sh := &streamShared{}
	b := sh.getBuf(3000)
	if len(b) != 4096 {
		t.Fatalf("getBuf(3000) has len %d", len(b))
	}
	sh.putBuf(b[:10])
	if b2 := sh.getBuf(4000); &b2[0] != &b[0] || len(b2) != 4096 {
		t.Fatal("a buffer given back is not reused by its class")
	}
	sh.putBuf(make([]byte, 3000)) // not a class size: dropped
	if len(sh.pools[2])+len(sh.pools[3]) != 0 {
		t.Fatal("pooled a buffer of no class size")
	}
	for range 1000 {
		sh.putBuf(make([]byte, 1024))
	}
	if n := len(sh.pools[1]); n != poolClassBudget/1024 {
		t.Fatalf("the 1 KiB pool holds %d buffers; its budget is %d", n, poolClassBudget/1024)
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
