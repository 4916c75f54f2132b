//go:build linux

package ioloop

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

const (
	// writeChunk is the largest buffer queued data is copied into. A
	// queue's first chunk is sized to its first write, at least
	// minWriteChunk (a page: the answers to a burst of pipelined requests
	// leave in one send), each next one twice the last, up to writeChunk;
	// small writes share a chunk, a larger one spans several. Chunks come
	// from the loop's pools and go back as soon as they are written, so an
	// empty queue holds no buffer.
	writeChunk    = 16 << 10
	minWriteChunk = 4 << 10
	// maxIov bounds one writev: far below IOV_MAX (1024), and more than
	// a socket buffer's worth of chunks.
	maxIov = 64
)

var errWriteClosed = errors.New("ioloop: write side closed")

// writeWaiter is a Write callback waiting for the byte count "end" to be
// handed to the kernel.
type writeWaiter struct {
	end uint64
	cb  func(error)
}

// writeState is the write queue: chunks[head:] hold queued bytes, the
// first off bytes of chunks[head] already written. Owned by the loop
// goroutine.
type writeState struct {
	chunks   [][]byte
	head     int
	off      int
	queued   int
	accepted uint64 // bytes accepted by Write since the stream was made
	done     uint64 // bytes handed to the kernel
	waiters  []writeWaiter
	whead    int
}

// Write sends p, or queues what the kernel does not take at once. Write
// copies what it queues, so p may be reused when Write returns. cb, if not
// nil, runs on the loop goroutine once all of p has been handed to the
// kernel (cb(nil): the write is acknowledged) or the stream closed first
// (an error matching ErrStreamClosed). It never runs inside Write.
//
// Write returns an error, and cb never runs, when it is called off the
// loop goroutine while the loop runs (ErrNotOnLoop; see Stream), when the
// stream is closed (the error matches ErrStreamClosed and wraps the cause,
// e.g. EPIPE when the write itself hit a dead peer), when p would take the
// queue over its cap (ErrWriteQueueFull: nothing was written; see
// OnDrain), or when the fd is read-only (an error wrapping EBADF).
func (s *Stream) Write(p []byte, cb func(error)) error {
	if !s.callerOwns() {
		return ErrNotOnLoop
	}
	if s.flags&(fNoWrite|fClosed|fWrClosed|fTLS) != 0 {
		switch {
		case s.is(fNoWrite):
			return errReadOnly
		case s.is(fClosed):
			return s.closedErr
		case s.is(fWrClosed):
			return &StreamClosedError{Cause: errWriteClosed}
		}
		return s.writeTLS(p, cb)
	}
	w := s.wq
	if w != nil && w.queued > 0 { // behind what is queued already
		if cb == nil && s.is(fInRun) && w.appendToTail(p, s.cfg.maxWrite) {
			return nil // the corked answers to pipelined requests, after the first
		}
		return s.queueWrite(p, cb)
	}
	if max := s.cfg.maxWrite; max > 0 && len(p) > max {
		return ErrWriteQueueFull
	}
	// Write straight out unless the fd is known to be full or pipelined
	// input is still buffered: then the answers are corked and leave in
	// one writev when run settles.
	if len(p) > 0 && s.flags&(fWritable|fConnecting) == fWritable && (!s.is(fInRun) || s.read.end == s.read.start) {
		n, e := s.writeOnce(p)
		if e != 0 {
			s.closeNow(os.NewSyscallError("write", e))
			s.kick()
			return s.closedErr
		}
		if w != nil { // the byte counts matter only to callbacks, which need w
			w.accepted += uint64(n)
			w.done += uint64(n)
		}
		p = p[n:]
		if len(p) > 0 {
			s.clear(fWritable)
		}
	}
	if len(p) == 0 && cb == nil {
		return nil // the common case: all of it went out at once
	}
	return s.queueWrite(p, cb)
}

// queueWrite is Write's second half: queue p (copied into pooled chunks)
// and register cb.
func (s *Stream) queueWrite(p []byte, cb func(error)) error {
	w := s.wq
	if w == nil {
		w = &writeState{}
		s.wq = w
	}
	if max := s.cfg.maxWrite; max > 0 && w.queued+len(p) > max {
		return ErrWriteQueueFull
	}
	if len(p) > 0 {
		// The loop's pools are the loop goroutine's: a Write made while
		// the loop is not running (setting a stream up) allocates.
		var sh *streamShared
		if s.is(fInRun) || s.loop.owner.Load() != 0 {
			sh = s.loop.sharedStreams()
		}
		w.enqueue(sh, p)
		w.accepted += uint64(len(p))
	}
	if cb != nil {
		w.waiters = append(w.waiters, writeWaiter{end: w.accepted, cb: cb})
	}
	if !s.is(fInRun) {
		if w.queued > 0 {
			s.clear(fParked)
			s.updateInterest()
		} else if cb != nil {
			s.kick() // already done: report it from the loop
		}
	}
	return nil
}

// WriteQueueLen returns the number of bytes accepted by Write and not yet
// handed to the kernel (over TLS, bytes of records). Loop goroutine only.
func (s *Stream) WriteQueueLen() int { return s.queued() }

// OnDrain sets fn to run on the loop goroutine each time the write queue
// becomes empty after holding data (nil clears it). Together with
// ErrWriteQueueFull and WriteQueueLen it is the stream's flow control: stop
// producing when the queue is long, resume in fn. From another goroutine
// it hops to the loop, as SetCloseCallback does (a drain that happens
// before it lands is not reported to fn).
func (s *Stream) OnDrain(fn func()) {
	if !s.callerOwns() {
		s.hop(func() { s.OnDrain(fn) })
		return
	}
	if fn != nil || s.x != nil {
		s.ext().onDrain = fn
	}
}

// writeOnce writes p once, retrying on EINTR; EAGAIN is (0, 0).
func (s *Stream) writeOnce(p []byte) (int, unix.Errno) {
	for {
		n, e := rawWrite(s.fd, p, s.is(fSock))
		switch e {
		case 0:
			return n, 0
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, 0
		default:
			return 0, e
		}
	}
}

// flush writes queued chunks, several per writev, until the queue is
// empty or the kernel takes less than offered.
func (s *Stream) flush() {
	w := s.wq
	sh := s.loop.sharedStreams()
	for w.queued > 0 {
		var n int
		var e unix.Errno
		offered := 0
		if len(w.chunks)-w.head == 1 {
			b := w.chunks[w.head][w.off:]
			offered = len(b)
			n, e = rawWrite(s.fd, b, s.is(fSock))
		} else {
			if sh.iov == nil {
				sh.iov = make([]unix.Iovec, maxIov)
			}
			k := 0
			for i := w.head; i < len(w.chunks) && k < maxIov; i++ {
				b := w.chunks[i]
				if i == w.head {
					b = b[w.off:]
				}
				sh.iov[k].Base = &b[0]
				sh.iov[k].SetLen(len(b))
				offered += len(b)
				k++
			}
			n, e = rawWritev(s.fd, sh.iov[:k], &sh.msg, s.is(fSock))
			clear(sh.iov[:k]) // hold no stream's chunks
		}
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			s.clear(fWritable)
			return
		default:
			s.closeNow(os.NewSyscallError("write", e))
			return
		}
		w.consume(sh, n)
		if w.queued == 0 {
			s.set(fDrainDue)
		}
		if n < offered {
			s.clear(fWritable)
			return
		}
	}
}

// appendToTail copies p into the room left in the last chunk, if all of it
// fits and the queue stays within max; it reports whether it did.
func (w *writeState) appendToTail(p []byte, max int) bool {
	if max > 0 && w.queued+len(p) > max || len(w.chunks) <= w.head {
		return false
	}
	last := &w.chunks[len(w.chunks)-1]
	if len(p) > cap(*last)-len(*last) {
		return false
	}
	*last = append(*last, p...)
	w.queued += len(p)
	w.accepted += uint64(len(p))
	return true
}

// enqueue copies p to the tail of the queue, taking chunks from sh's pools
// (or allocating them when sh is nil).
func (w *writeState) enqueue(sh *streamShared, p []byte) {
	w.queued += len(p)
	for len(p) > 0 {
		size := minWriteChunk
		if n := len(w.chunks); n > w.head {
			last := w.chunks[n-1]
			if room := cap(last) - len(last); room > 0 {
				k := copy(last[len(last):cap(last)], p)
				w.chunks[n-1] = last[:len(last)+k]
				p = p[k:]
				continue
			}
			size = 2 * cap(last)
		}
		size = min(max(size, len(p)), writeChunk)
		var c []byte
		if sh != nil {
			c = sh.getBuf(size)
		} else {
			_, size = bufClass(size)
			c = make([]byte, size)
		}
		w.chunks = append(w.chunks, c[:0])
	}
}

// consume drops n written bytes from the head of the queue, giving the
// chunks that are done back to sh's pools.
func (w *writeState) consume(sh *streamShared, n int) {
	w.done += uint64(n)
	w.queued -= n
	for n > 0 {
		c := w.chunks[w.head]
		if rem := len(c) - w.off; n >= rem {
			n -= rem
			sh.putBuf(c)
			w.chunks[w.head] = nil
			w.head++
			w.off = 0
		} else {
			w.off += n
			n = 0
		}
	}
	if w.head == len(w.chunks) || w.queued == 0 {
		// An empty tail chunk may remain; give it back too.
		for i := w.head; i < len(w.chunks); i++ {
			sh.putBuf(w.chunks[i])
			w.chunks[i] = nil
		}
		w.chunks = w.chunks[:0]
		w.head, w.off = 0, 0
	}
}

// drop forgets the queue when the stream closes (its chunks are left to
// the GC: drop may run off the loop); waiters are failed by
// runWriteCallbacks.
func (w *writeState) drop() {
	for i := range w.chunks {
		w.chunks[i] = nil
	}
	w.chunks = nil
	w.head, w.off, w.queued = 0, 0, 0
}

func (w *writeState) hasCallbacks() bool { return w.whead < len(w.waiters) }

// runWriteCallbacks runs the oldest write callback if its bytes are out
// (or the stream closed), reporting whether it ran one.
func (s *Stream) runWriteCallbacks() bool {
	w := s.wq
	if w == nil || w.whead == len(w.waiters) {
		return false
	}
	ww := w.waiters[w.whead]
	var err error
	switch {
	case ww.end <= w.done:
	case s.is(fClosed):
		err = s.closedErr
	default:
		return false
	}
	w.waiters[w.whead] = writeWaiter{}
	w.whead++
	if w.whead == len(w.waiters) {
		w.waiters = w.waiters[:0]
		w.whead = 0
	}
	ww.cb(err)
	return true
}

// sendRecord is how a TLS stream's records (and alerts) leave: as Write's
// bytes do on a plain stream, straight out when nothing is queued and the
// fd takes them (unless corked behind pipelined input, see Write), else
// queued behind the rest. The caller (writeTLS) has checked the queue's
// cap on the plaintext. A failed write is returned, not acted on: the
// caller closes the stream, or ignores it for a best-effort close_notify.
func (s *Stream) sendRecord(p []byte) error {
	if s.is(fClosed) {
		return s.closedErr
	}
	w := s.wq
	if w != nil && w.queued > 0 {
		if s.is(fInRun) && w.appendToTail(p, 0) {
			return nil
		}
		s.queueBytes(p)
		return nil
	}
	if s.flags&(fWritable|fConnecting) == fWritable && (!s.is(fInRun) || s.read.end == s.read.start) {
		n, e := s.writeOnce(p)
		if e != 0 {
			return os.NewSyscallError("write", e)
		}
		if w != nil {
			w.accepted += uint64(n)
			w.done += uint64(n)
		}
		if p = p[n:]; len(p) == 0 {
			return nil
		}
		s.clear(fWritable)
	}
	s.queueBytes(p)
	return nil
}

// queueBytes copies p to the tail of the write queue, with no cap check
// (sendRecord's caller made it).
func (s *Stream) queueBytes(p []byte) {
	w := s.wq
	if w == nil {
		w = &writeState{}
		s.wq = w
	}
	var sh *streamShared
	if s.is(fInRun) || s.loop.owner.Load() != 0 {
		sh = s.loop.sharedStreams()
	}
	w.enqueue(sh, p)
	w.accepted += uint64(len(p))
	if !s.is(fInRun) {
		s.clear(fParked)
		s.updateInterest()
	}
}

// addWriteWaiter registers cb to run once every byte accepted so far has
// been handed to the kernel (or the stream closed).
func (s *Stream) addWriteWaiter(cb func(error)) {
	w := s.wq
	if w == nil {
		w = &writeState{}
		s.wq = w
	}
	w.waiters = append(w.waiters, writeWaiter{end: w.accepted, cb: cb})
	if !s.is(fInRun) && w.queued == 0 {
		s.kick() // already done: report it from the loop
	}
}
