//go:build linux

package ioloop

import (
	"math/bits"

	"golang.org/x/sys/unix"
)

// What a loop's streams share, so that an idle connection holds no buffer
// at all (nbio and gnet do the same; libuv leaves it to alloc_cb):
//
//   - One read buffer. A stream reads into it, its read callbacks get
//     slices of it, and before its visit to the loop ends (see
//     Stream.releaseRead) whatever they left unconsumed is copied into a
//     buffer of the stream's own, sized to fit. A callback that consumes
//     what it is given, the common case, costs no copy at all.
//   - Pools of the per-stream buffers (read leftovers and queued writes),
//     by power-of-two size class, so that a stream taking a buffer and
//     giving it back allocates nothing in the steady state.
//   - The writev vector and message header of flush.
//
// All of it belongs to the loop goroutine: a stream touches it only inside
// its run (fill, flush, releaseRead), which only the loop calls.

const (
	// sharedReadSize is the loop's read buffer: the most one read(2)
	// takes. 64 KiB as in gnet and nbio: a socket's worth of data, and
	// well past the 16 KiB a TLS record or a typical HTTP head needs.
	sharedReadSize = 64 << 10
	// copyToSharedMax: a stream that holds at most this many unconsumed
	// bytes in its own buffer moves them to the front of the shared
	// buffer before it reads again, so the read gets the whole shared
	// buffer's room (one syscall for a burst of pipelined requests) and
	// the own buffer goes back to the pool. Larger leftovers (a long
	// ReadBytes in progress) stay put and the read appends to them.
	copyToSharedMax = 4 << 10
	// Buffer pools: classes 512 B << k up to maxPooledBuf, each
	// keeping at most poolClassBudget bytes (at least one buffer) of
	// emptied buffers, so a loop keeps at most 2.5 MiB for its streams
	// however many it served. A larger buffer (a read of more than 256
	// KiB in progress) is allocated to fit and left to the GC once empty.
	minBufShift     = 9 // 512 B
	numBufClasses   = 10
	maxPooledBuf    = 1 << (minBufShift + numBufClasses - 1) // 256 KiB
	poolClassBudget = 256 << 10
)

// streamShared is the per-loop state shared by a loop's streams; see
// above. The loop holds it in IOLoop.streams, made on first use.
type streamShared struct {
	rbuf   []byte  // the shared read buffer
	holder *Stream // the stream whose unconsumed bytes are in rbuf now, or nil
	pools  [numBufClasses][][]byte
	iov    []unix.Iovec // flush's writev vector (maxIov entries)
	msg    unix.Msghdr  // flush's sendmsg header
}

// sharedStreams returns the loop's stream state, making it on first use.
// Loop goroutine only.
func (l *IOLoop) sharedStreams() *streamShared {
	sh := l.streams
	if sh == nil {
		sh = &streamShared{rbuf: make([]byte, sharedReadSize)}
		l.streams = sh
	}
	return sh
}

// bufClass returns the size class of a buffer of at least n bytes, and
// that class's size; n over maxPooledBuf gets class -1 and size n.
func bufClass(n int) (int, int) {
	if n > maxPooledBuf {
		return -1, n
	}
	c := 0
	if n > 1<<minBufShift {
		c = bits.Len(uint(n-1)) - minBufShift
	}
	return c, 1 << (minBufShift + c)
}

// getBuf returns a buffer of at least n bytes (len is the class size).
func (sh *streamShared) getBuf(n int) []byte {
	c, size := bufClass(n)
	if c >= 0 {
		if p := sh.pools[c]; len(p) > 0 {
			b := p[len(p)-1]
			p[len(p)-1] = nil
			sh.pools[c] = p[:len(p)-1]
			return b[:size]
		}
	}
	return make([]byte, size)
}

// putBuf gives b back to its class's pool, or drops it (to the GC) when it
// is not a class size or the pool is full.
func (sh *streamShared) putBuf(b []byte) {
	b = b[:cap(b)]
	c, size := bufClass(len(b))
	if c < 0 || size != len(b) {
		return
	}
	if p := sh.pools[c]; len(p) < max(1, poolClassBudget/size) {
		sh.pools[c] = append(p, b)
	}
}
