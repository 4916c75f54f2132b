//go:build linux

package ioloop

import (
	"bytes"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// readOp is the kind of read a stream is waiting to complete.
type readOp uint8

const (
	opNone  readOp = iota
	opUntil        // ReadUntil: up to and including delim, within n bytes
	opBytes        // ReadBytes: exactly n bytes
	opSome         // ReadSome: whatever is buffered, at least one byte
	opClose        // ReadUntilClose: everything up to EOF
)

// readState is the read buffer, buf[start:end] holding unconsumed bytes,
// and the single pending read. buf is the loop's shared read buffer while
// the stream's run holds it (shared), else a buffer of the stream's own
// that holds what a run left unconsumed, or nil when nothing is buffered.
// Owned by the loop goroutine.
type readState struct {
	buf    []byte
	start  int
	end    int
	ready  bool // the fd may have more: set by readiness, cleared by EAGAIN or a short read
	shared bool // buf is the loop's shared read buffer (see stream_shared.go)

	op    readOp
	cb    func([]byte, error)
	delim []byte
	n     int // opBytes: the count; opUntil: the maximum
	scan  int // opUntil: bytes after start already searched for delim
}

// ReadUntil reads up to and including delim. The delimiter must end within
// the first max bytes (max <= 0 means the read buffer cap; max over the cap
// is ErrBufferFull at once); otherwise cb gets an error matching both
// ErrStreamClosed and ErrDelimiterNotFound, reading stops and the stream
// closes once queued writes are flushed, so the caller can still answer.
// delim must not change until cb runs.
//
// ReadUntil returns an error, and cb never runs, when the call is invalid
// (ErrNotOnLoop off the loop goroutine, see Stream; nil cb, empty delim, a
// read already pending, a write-only fd: an error wrapping EBADF) or the
// stream's read side has finished and the buffer cannot satisfy the read. Otherwise cb runs
// exactly once, on the loop goroutine, with a slice valid only until it
// returns.
func (s *Stream) ReadUntil(delim []byte, max int, cb func([]byte, error)) error {
	if !s.callerOwns() {
		return ErrNotOnLoop
	}
	if len(delim) == 0 {
		return os.NewSyscallError("ReadUntil: empty delimiter", unix.EINVAL)
	}
	if max <= 0 {
		max = s.cfg.maxRead
	}
	if max > s.cfg.maxRead {
		return ErrBufferFull
	}
	return s.startRead(opUntil, delim, max, cb)
}

// ReadBytes reads exactly n bytes (n must be positive and at most the read
// buffer cap, else ErrBufferFull). Contract as for ReadUntil; at EOF before
// n bytes, cb gets an error matching ErrStreamClosed and io.EOF.
func (s *Stream) ReadBytes(n int, cb func([]byte, error)) error {
	if !s.callerOwns() {
		return ErrNotOnLoop
	}
	if n <= 0 {
		return os.NewSyscallError("ReadBytes", unix.EINVAL)
	}
	if n > s.cfg.maxRead {
		return ErrBufferFull
	}
	return s.startRead(opBytes, nil, n, cb)
}

// ReadSome delivers whatever is buffered as soon as at least one byte is
// (Tornado's read_bytes(partial=True)). Contract as for ReadUntil. This is
// the cheap path for proxies and echo servers: one read syscall per
// readiness event, and the data can be written straight back.
func (s *Stream) ReadSome(cb func([]byte, error)) error {
	if !s.callerOwns() {
		return ErrNotOnLoop
	}
	return s.startRead(opSome, nil, 0, cb)
}

// ReadUntilClose delivers everything up to the peer's EOF with a nil
// error. If the stream ends otherwise (reset, Close, timeout) cb gets what
// was buffered and the error; past the read buffer cap it fails with
// ErrBufferFull and the stream closes.
func (s *Stream) ReadUntilClose(cb func([]byte, error)) error {
	if !s.callerOwns() {
		return ErrNotOnLoop
	}
	return s.startRead(opClose, nil, 0, cb)
}

// Reading reports whether a read is pending. Loop goroutine only.
func (s *Stream) Reading() bool { return s.read.op != opNone }

func (s *Stream) startRead(op readOp, delim []byte, n int, cb func([]byte, error)) error {
	if cb == nil {
		return errNilCallback
	}
	if s.is(fNoRead) {
		return errWriteOnly
	}
	r := &s.read
	if r.op != opNone {
		return ErrReadPending
	}
	r.op, r.delim, r.n, r.cb, r.scan = op, delim, n, cb, 0
	if s.is(fRdDone) && op != opClose {
		// The read side is over: fail at once unless the buffer can serve it.
		if n, err, _ := s.match(); n == 0 && err == s.rdErr {
			r.op, r.delim, r.cb = opNone, nil, nil
			return s.rdErr
		}
	}
	s.clear(fParked)
	if d := s.cfg.readTimeout; d > 0 && !s.is(fClosed) {
		x := s.ext()
		x.rdeadline = s.loop.batchNow().Add(d)
		if x.rtimer != nil && x.rdeadline.Before(x.rtimerAt) {
			// SetReadTimeout shortened the timeout: the armed timer
			// would fire too late. (With an unchanged timeout deadlines
			// only move later, so this costs nothing on a busy stream.)
			s.loop.RemoveTimeout(x.rtimer)
			x.rtimer = nil
		}
		if x.rtimer == nil {
			if x.rtimerFn == nil {
				x.rtimerFn = s.onReadTimer
			}
			x.rtimer = s.loop.CallLater(d, x.rtimerFn)
			x.rtimerAt = x.rdeadline
		}
	}
	if !s.is(fInRun) {
		s.set(fProbe)
		s.kick()
	}
	return nil
}

// match decides whether the pending read can complete now: with n bytes,
// with a failure (err), or not yet (ok false). It has no side effects
// beyond remembering how far ReadUntil has searched.
func (s *Stream) match() (n int, err error, ok bool) {
	r := &s.read
	avail := r.end - r.start
	if avail == 0 && !s.is(fRdDone) {
		return 0, nil, false // the common case when a read starts: wait for data
	}
	switch r.op {
	case opSome:
		if avail > 0 {
			return avail, nil, true
		}
	case opBytes:
		if avail >= r.n {
			return r.n, nil, true
		}
	case opUntil:
		if i := bytes.Index(r.buf[r.start+r.scan:r.end], r.delim); i >= 0 {
			end := r.scan + i + len(r.delim)
			if end > r.n {
				return 0, ErrDelimiterNotFound, true
			}
			return end, nil, true
		}
		if avail >= r.n {
			return 0, ErrDelimiterNotFound, true
		}
		if k := avail - len(r.delim) + 1; k > r.scan {
			r.scan = k
		}
	case opClose:
		if s.is(fRdDone) {
			if s.rdCause() == io.EOF {
				return avail, nil, true
			}
			return avail, s.rdErr, true
		}
		if avail >= s.cfg.maxRead {
			return 0, ErrBufferFull, true
		}
	}
	if s.is(fRdDone) {
		return 0, s.rdErr, true
	}
	return 0, nil, false
}

// serveRead completes the pending read if it can, running its callback.
func (s *Stream) serveRead() bool {
	n, err, ok := s.match()
	if !ok {
		return false
	}
	if err == ErrDelimiterNotFound || err == ErrBufferFull {
		s.finishRead(err)
		if !s.is(fClosing) {
			s.set(fClosing)
			s.closingErr = err
		}
		if s.rdCause() == err {
			n, err = 0, s.rdErr
		} else {
			// The read side had already ended (EOF read ahead): the limit
			// is still what failed this read, whenever the EOF arrived.
			n, err = 0, &StreamClosedError{Cause: err}
		}
	}
	r := &s.read
	cb := r.cb
	r.op, r.cb, r.delim, r.scan = opNone, nil, nil, 0
	if s.x != nil {
		s.x.rdeadline = time.Time{}
	}
	var p []byte
	if n > 0 {
		p = r.buf[r.start : r.start+n : r.start+n]
		r.start += n
		if r.start == r.end {
			r.start, r.end = 0, 0
		}
	}
	cb(p, err)
	return true
}

// finishRead ends the read side: later reads are served from the buffer or
// fail with an error wrapping cause.
func (s *Stream) finishRead(cause error) {
	if s.is(fRdDone) {
		return
	}
	s.set(fRdDone)
	s.rdErr = &StreamClosedError{Cause: cause}
	s.read.ready = false
}

// wantsRead reports whether the stream reads from its fd now, given its
// buffer and its pending read. It is the single rule behind both fill
// (which reads only when it holds) and updateInterest (which asks epoll
// for Read exactly when it holds): a stream must never keep interest in an
// event it will not act on, because the loop is level-triggered and would
// wake up for it at once, forever (issue 9 §3: a paused reader with 4 KiB
// buffered spun its loop at 100% CPU).
//
// With a read pending it holds until the buffer reaches its cap: short of
// that, the pending read needs more bytes, and at the cap match has
// already completed or failed it. With no read pending the stream reads
// ahead only into an empty buffer, as Tornado's IOStream does: that is how
// a peer's close (EOF, a reset) is noticed and what has the next request
// ready, and once anything is buffered the stream stops reading, so the
// data waits in the kernel and the kernel's flow control holds the peer
// back.
func (s *Stream) wantsRead() bool {
	r := &s.read
	switch {
	case s.flags&(fRdDone|fNoRead|fHandshaking) != 0:
		return false
	case r.op == opNone:
		return r.end == r.start
	default:
		return r.end-r.start < s.cfg.maxRead
	}
}

// fill does one read(2) into the buffer, if wantsRead. It reports whether
// anything changed (data, EOF or an error). It leaves read.ready set only
// when the read filled all the room it had, the one case where the kernel
// may hold more: a short read means the socket was drained, so we go back
// to epoll instead of paying for a read that returns EAGAIN.
//
// The read goes into the loop's shared buffer whenever the stream holds
// little or nothing (see copyToSharedMax), so one read takes up to
// sharedReadSize bytes and an idle stream holds no buffer; a stream with
// more unconsumed bytes than that appends to its own buffer, growing it
// towards the cap while a pending read needs more.
func (s *Stream) fill() bool {
	if !s.wantsRead() {
		return false
	}
	r := &s.read
	avail := r.end - r.start
	// How much this read may add: a pending read may take the buffer to
	// the cap; with none pending the stream reads ahead into an empty
	// buffer at most its initial read size, which is all it will hold
	// until a read asks for more.
	limit := s.cfg.maxRead - avail
	if r.op == opNone {
		limit = min(limit, s.cfg.initialRead)
	}
	sh := s.loop.sharedStreams()
	switch {
	case r.buf == nil && sh.holder == nil:
		// The common case: nothing buffered, read into the shared buffer.
		r.buf, r.start, r.end, r.shared = sh.rbuf, 0, 0, true
		sh.holder = s
	case r.shared:
		// A second read in this run (the first filled its room).
		if r.start == r.end {
			r.start, r.end = 0, 0
		} else if r.start > 0 && len(r.buf)-r.end < len(r.buf)/2 {
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		}
		if r.end == len(r.buf) {
			// The shared buffer is full and a pending read needs more:
			// move to a buffer of the stream's own.
			s.ownRead(sh, 2*avail)
		}
	case avail <= copyToSharedMax && (sh.holder == nil || sh.holder == s):
		// Move what is left to the front of the shared buffer and read
		// after it; the own buffer, if any, goes back to the pool.
		if r.buf != nil {
			copy(sh.rbuf, r.buf[r.start:r.end])
			sh.putBuf(r.buf)
		}
		r.buf, r.start, r.end, r.shared = sh.rbuf, 0, avail, true
		sh.holder = s
	default:
		if r.buf == nil {
			r.buf = sh.getBuf(min(limit, sharedReadSize))
		}
		if r.start == r.end {
			r.start, r.end = 0, 0
		} else if r.start > 0 && len(r.buf)-r.end < len(r.buf)/2 {
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		}
		if r.end == len(r.buf) {
			// Full, and (wantsRead) a pending read needs more than we
			// hold: grow towards the cap.
			s.ownRead(sh, 2*len(r.buf))
		}
	}
	room := min(len(r.buf)-r.end, limit)
	if room <= 0 {
		return false
	}
	if s.is(fTLS) {
		return s.fillTLS(room)
	}
	for {
		n, e := rawRead(s.fd, r.buf[r.end:r.end+room])
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			r.ready = false
			return false
		case e != 0:
			s.closeNow(os.NewSyscallError("read", e))
			return true
		case n == 0:
			s.finishRead(io.EOF)
			return true
		}
		r.end += n
		r.ready = n == room
		return true
	}
}

// ownRead moves the unconsumed bytes into a buffer of the stream's own of
// about size bytes (at least what they need, at most the cap, unless they
// need more), giving back the buffer they were in.
func (s *Stream) ownRead(sh *streamShared, size int) {
	r := &s.read
	avail := r.end - r.start
	nb := sh.getBuf(max(avail, min(size, s.cfg.maxRead)))
	copy(nb, r.buf[r.start:r.end])
	s.dropReadBuf(sh)
	r.buf, r.start, r.end = nb, 0, avail
}

// dropReadBuf lets go of the read buffer: the shared one goes back to the
// loop, an own one to the pool. The caller has taken what it needs from it.
func (s *Stream) dropReadBuf(sh *streamShared) {
	r := &s.read
	if r.shared {
		r.shared = false
		if sh.holder == s {
			sh.holder = nil
		}
	} else if r.buf != nil {
		sh.putBuf(r.buf)
	}
	r.buf, r.start, r.end = nil, 0, 0
}

// releaseRead ends the run's hold on the shared read buffer: the bytes its
// read callbacks left unconsumed are copied into a buffer of the stream's
// own, sized to fit, and a stream with nothing buffered gives its own
// buffer back, so that an idle stream holds no read buffer. run calls it
// on its way out, whatever happened (a callback's panic included), so the
// next stream's read can use the shared buffer.
func (s *Stream) releaseRead() {
	r := &s.read
	switch {
	case r.buf == nil:
	case r.end > r.start:
		if r.shared {
			s.ownRead(s.loop.sharedStreams(), r.end-r.start)
		}
	case r.shared: // the common case: the callbacks took everything
		r.buf, r.start, r.end, r.shared = nil, 0, 0, false
		if sh := s.loop.streams; sh.holder == s {
			sh.holder = nil
		}
	default:
		s.dropReadBuf(s.loop.sharedStreams())
	}
}

// onReadTimer fires at (or after) the pending read's deadline. Deadlines
// move with every read, but the timer is re-armed only when it fires, so a
// busy stream costs one timer per timeout period, not one per read.
func (s *Stream) onReadTimer() {
	x := s.x // set: the timer was armed through it
	x.rtimer = nil
	if s.is(fClosed) || s.read.op == opNone || x.rdeadline.IsZero() {
		return
	}
	if now := time.Now(); now.Before(x.rdeadline) {
		x.rtimer = s.loop.CallLater(x.rdeadline.Sub(now), x.rtimerFn)
		x.rtimerAt = x.rdeadline
		return
	}
	s.closeNow(ErrTimeout)
	s.run(None)
}
