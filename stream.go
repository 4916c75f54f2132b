//go:build linux

package ioloop

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/ioloop-go/ioloop/internal/goid"
	"golang.org/x/sys/unix"
)

// Stream is a buffered, non-blocking byte stream over one file descriptor
// (a socket, pipe, tty: anything epoll can watch) driven by one IOLoop. It
// gives Tornado's IOStream contract a Go shape: ask for a read ("until this
// delimiter", "exactly n bytes", "whatever is there", "until close") or a
// write, and a callback runs on the loop goroutine when it is done.
//
// Goroutines. A Stream belongs to its loop, as Tornado's IOStream belongs
// to its IOLoop. Its methods run on the loop goroutine (in a handler,
// callback or timer of that loop, or in any Stream callback) or, while the
// loop is not running, on one goroutine at a time (to set a stream up
// before Start: the go statement that starts the loop orders the two).
// That is what lets the loop path go without locks. The methods check the
// rule (a few nanoseconds); called on another goroutine while the loop
// runs:
//
//   - Close and CloseAfterFlush are safe: they hop to the loop
//     (AddCallback), and the stream closes there shortly after.
//   - SetCloseCallback, OnDrain and SetReadTimeout hop the same way: they
//     have no error to return, and hops run in order.
//   - The methods that return an error (Write, ReadUntil, ReadBytes,
//     ReadSome, ReadUntilClose, CloseWrite, StartTLS, SetNoDelay,
//     SetKeepAlive) return ErrNotOnLoop and do nothing: no state
//     changes, no callback.
//   - The accessors (Buffered, Closed, Err, Fd, Reading, WriteQueueLen,
//     RemoteAddr, LocalAddr, TLSConnectionState) read loop-owned state
//     unchecked: loop goroutine only. Loop is safe anywhere.
//
// To use a stream from another goroutine, hop over:
// s.Loop().AddCallback(func() { err := s.Write(p, cb); ... }).
//
// Callbacks never run inside the call that requested them: a read that the
// buffer can already satisfy, a write that completed at once or a close
// caused by a failing write is reported from the loop a moment later, so
// code after s.ReadBytes(...) never observes its callback having run.
//
// Buffers. Streams read into one buffer their loop shares, and the []byte
// handed to a read callback aliases it: it is valid only until the
// callback returns (like bufio.Reader.ReadSlice), after which the next
// read of any stream of the loop may overwrite it; copy it to keep it.
// Only the bytes a callback leaves unconsumed (pipelined requests, a
// partial message) are copied into a buffer of the stream's own, taken
// from a pool and given back once empty, so an idle stream holds no read
// buffer. Write copies whatever it cannot send at once (into pooled
// chunks, given back once written), so the caller may reuse p as soon as
// Write returns.
//
// TLS. StartTLS (or ListenTLS, ConnectTLS) puts crypto/tls between the
// stream and its socket; every read and write then works on plaintext as
// before. See StartTLS.
//
// Ownership. The Stream owns its fd and closes it in Close.
type Stream struct {
	// Everything below is owned by the loop goroutine. The fields are
	// ordered for size (an idle stream costs what its struct costs), and
	// state most streams never need lives behind x.

	loop *IOLoop       // the loop that runs every callback; fixed at creation
	cfg  *streamConfig // limits and modes, shared by a server's streams (SetReadTimeout copies it; see fOwnCfg)
	fd   int           // the descriptor; -1 once closed

	read readState   // the read buffer and the pending read
	wq   *writeState // the write queue and its callbacks; nil until the first Write that queues or has a callback

	deferredFn func()             // s.deferredRun, bound on the first kick so later kicks do not allocate
	srv        *Server            // the server tracking this stream, if any
	peer       net.Addr           // peer address, from accept/connect or getpeername
	closedErr  *StreamClosedError // nil while open; else returned for operations on the closed stream, Cause saying why (nil: Close)
	rdErr      *StreamClosedError // nil until the read side finished; then the error for reads, Cause saying why
	closingErr error              // cause to close with when closing completes
	x          *streamExtra       // rarely used state, allocated on first use

	srvIdx   int32       // index in srv.streams
	interest Events      // events currently registered with the loop
	errEvent Events      // Error bits seen in this run
	flags    streamFlags // the stream's yes/no state; see streamFlags
}

// streamFlags packs a Stream's yes/no state into one word, so that the
// struct stays small and settle can tell with one test that nothing but
// reading and writing is going on (fAttention).
type streamFlags uint32

const (
	fSock streamFlags = 1 << iota // fd is a socket: writes use send/sendmsg with MSG_NOSIGNAL
	// The fd's access mode (F_GETFL at NewStream; sockets are both): a
	// write-only fd (a pipe's write end) is never read and never asks for
	// Read, a read-only one is never written.
	fNoRead
	fNoWrite
	fOwnCfg     // cfg is this stream's own
	fRegistered // fd is in the loop's handler table
	fParked     // unregistered after Error with nowhere to read into; re-armed by the next request
	fInRun      // run() is on the stack: requests are recorded, not acted on
	fScheduled  // a deferred run is queued with AddCallback
	fProbe      // the next run should try one read before waiting for readiness
	fConnecting // Connect has not completed yet
	fDraining   // the server is shutting down: close when idle
	fCloseDone  // close notifications have been delivered
	fClosed     // fd closed; no more I/O (closedErr is set)
	fRdDone     // read side finished: EOF, error or a limit (rdErr is set)
	fClosing    // close once the write queue is empty
	fWrClosed   // CloseAfterFlush/CloseWrite called: no more writes
	fShutWrPend // CloseWrite: shutdown(SHUT_WR) once flushed
	fLingering  // closing: write side shut, discarding input until EOF
	fDrainDue   // the queue emptied since onDrain last ran
	fWritable   // the last write did not hit EAGAIN
	fInHandler  // a server's handler is running for this new stream: kick leaves the run to Server.serve
	// TLS (stream_tls.go): x.tls holds the session; reads and writes go
	// through it once the handshake is over.
	fTLS
	fHandshaking // the handshake runs on its goroutine: the stream is unregistered and neither reads nor writes

	// fAttention is what settle must look at beyond the pending read and
	// the write queue: while none is set, a stream is just reading and
	// writing.
	fAttention = fDraining | fClosed | fRdDone | fClosing | fShutWrPend | fLingering | fDrainDue
)

func (s *Stream) is(f streamFlags) bool { return s.flags&f != 0 }
func (s *Stream) set(f streamFlags)     { s.flags |= f }
func (s *Stream) clear(f streamFlags)   { s.flags &^= f }
func (s *Stream) setTo(f streamFlags, on bool) {
	if on {
		s.flags |= f
	} else {
		s.flags &^= f
	}
}

// streamExtra is the state of a Stream that most streams never use: a
// connect in progress, a close callback, a lingering close, read timeouts,
// OnDrain. Loop goroutine only, like the Stream.
type streamExtra struct {
	connectCb func(*Stream, error) // Connect's callback, cleared once called
	tls       *streamTLS           // the TLS session (fTLS), see stream_tls.go
	connTimer *Timeout             // Connect's timeout
	closeCb   func(error)          // user's close callback
	onDrain   func()               // called when the write queue empties
	ltimer    *Timeout             // bounds the lingering close
	rtimer    *Timeout             // read-timeout timer, armed lazily
	rtimerFn  func()               // s.onReadTimer, bound once
	rtimerAt  time.Time            // the deadline rtimer was armed for
	rdeadline time.Time            // when the pending read times out (zero: never)
}

// ext returns s.x, allocating it on first use.
func (s *Stream) ext() *streamExtra {
	if s.x == nil {
		s.x = &streamExtra{}
	}
	return s.x
}

// queued is the number of bytes in the write queue.
func (s *Stream) queued() int {
	if s.wq == nil {
		return 0
	}
	return s.wq.queued
}

// writeCallbacksDue reports whether Write callbacks wait to be told.
func (s *Stream) writeCallbacksDue() bool { return s.wq != nil && s.wq.hasCallbacks() }

// cause is why the stream closed (nil: Close, or still open).
func (s *Stream) cause() error {
	if s.closedErr == nil {
		return nil
	}
	return s.closedErr.Cause
}

// rdCause is why the read side finished (nil: still reading, or Close).
func (s *Stream) rdCause() error {
	if s.rdErr == nil {
		return nil
	}
	return s.rdErr.Cause
}

// StreamClosedError reports an operation on a stream that is closed (or
// whose read side has finished). It matches ErrStreamClosed with errors.Is
// and unwraps to the cause: io.EOF when the peer closed, a *os.SyscallError
// wrapping ECONNRESET/EPIPE/..., ErrTimeout, ErrDelimiterNotFound or
// ErrBufferFull when a read limit was hit, nil when Close was called.
type StreamClosedError struct {
	Cause error
}

// Error reads "ioloop: stream closed: <cause>", naming the package once
// even when the cause is one of ours ("ioloop: delimiter not found...").
func (e *StreamClosedError) Error() string {
	if e.Cause == nil {
		return ErrStreamClosed.Error()
	}
	return ErrStreamClosed.Error() + ": " + strings.TrimPrefix(e.Cause.Error(), "ioloop: ")
}

// Is makes errors.Is(err, ErrStreamClosed) true.
func (e *StreamClosedError) Is(target error) bool { return target == ErrStreamClosed }

// Unwrap returns the cause, so errors.Is(err, syscall.ECONNRESET) works.
func (e *StreamClosedError) Unwrap() error { return e.Cause }

var (
	// ErrStreamClosed matches every *StreamClosedError.
	ErrStreamClosed = errors.New("ioloop: stream closed")
	// ErrDelimiterNotFound: ReadUntil's delimiter did not appear within its
	// maximum. The read fails and the stream closes once queued writes are
	// flushed (so a protocol can still answer, e.g. HTTP 431).
	ErrDelimiterNotFound = errors.New("ioloop: delimiter not found within the read limit")
	// ErrBufferFull: a read needs more than the read buffer cap
	// (WithMaxReadBuffer). Returned at once by ReadBytes(n) with n over the
	// cap; a ReadUntilClose that outgrows it fails and closes the stream.
	ErrBufferFull = errors.New("ioloop: read buffer full")
	// ErrWriteQueueFull: Write would push the write queue over its cap
	// (WithMaxWriteQueue). Nothing was written or queued; wait for OnDrain.
	ErrWriteQueueFull = errors.New("ioloop: write queue full")
	// ErrReadPending: a stream has at most one read outstanding.
	ErrReadPending = errors.New("ioloop: a read is already pending")
	// ErrTimeout is the cause of a stream closed by its read timeout or a
	// Connect that timed out. It is os.ErrDeadlineExceeded, so either
	// sentinel (and net.Error's Timeout()) works.
	ErrTimeout = os.ErrDeadlineExceeded
	// ErrShutdown is the cause of a stream closed by its server's Close or
	// at the deadline of its Shutdown.
	ErrShutdown = errors.New("ioloop: server shut down")
	// ErrNotOnLoop: a Stream method was called on another goroutine than
	// its loop's while the loop runs. The call did nothing. See Stream.
	ErrNotOnLoop = errors.New("ioloop: Stream method called off its loop goroutine while the loop runs; " +
		"call it on the loop goroutine, e.g. s.Loop().AddCallback(func() { ... })")

	errStreamPanic = errors.New("ioloop: a stream callback panicked")
	errNilCallback = errors.New("ioloop: nil callback")
	// errWriteOnly and errReadOnly reject a read on a write-only fd and a
	// write on a read-only one. They wrap EBADF, which is what read(2) and
	// write(2) would have said, but the stream never makes that call: the
	// misuse leaves the stream as it was.
	errWriteOnly = fmt.Errorf("ioloop: read from a write-only stream: %w", unix.EBADF)
	errReadOnly  = fmt.Errorf("ioloop: write to a read-only stream: %w", unix.EBADF)
)

// streamConfig holds a stream's limits; see the StreamOption constructors.
type streamConfig struct {
	initialRead int           // first read buffer size
	maxRead     int           // read buffer cap
	maxWrite    int           // write queue cap; <= 0: unlimited
	halfOpen    bool          // keep the write side open after EOF
	readTimeout time.Duration // 0: none
	// handshakeTimeout bounds a TLS handshake (StartTLS, ListenTLS).
	handshakeTimeout time.Duration
}

// StreamOption configures NewStream (and the streams a Server creates).
type StreamOption func(*streamConfig)

const (
	defaultInitialRead = 4 << 10
	defaultMaxRead     = 4 << 20
	defaultMaxWrite    = 16 << 20
)

// WithMaxReadBuffer caps the read buffer (default 4 MiB): the largest
// ReadBytes, ReadUntil maximum and ReadUntilClose the stream can serve.
func WithMaxReadBuffer(n int) StreamOption {
	return func(c *streamConfig) {
		if n > 0 {
			c.maxRead = n
		}
	}
}

// WithReadBufferSize sets how much the stream reads ahead, with no read
// pending, into an empty buffer (default 4 KiB): that is how it notices a
// peer's close and has the next request ready, and it bounds what an idle
// stream buffers. A pending read reads up to 64 KiB at a time (the loop's
// shared read buffer), or up to what it may still add under the cap.
func WithReadBufferSize(n int) StreamOption {
	return func(c *streamConfig) {
		if n > 0 {
			c.initialRead = n
		}
	}
}

// WithMaxWriteQueue caps the bytes queued for writing (default 16 MiB; 0 or
// less: unlimited). A Write that would exceed it fails with
// ErrWriteQueueFull and queues nothing: that is the stream's backpressure.
// Over TLS the queue holds records, and a Write is checked on its
// plaintext (see StartTLS).
func WithMaxWriteQueue(n int) StreamOption {
	return func(c *streamConfig) { c.maxWrite = n }
}

// WithHalfOpen keeps the stream open for writing after the peer's EOF
// (Node's allowHalfOpen). By default EOF ends the stream once queued writes
// are flushed, so a peer that only half-closes still gets its answer.
func WithHalfOpen() StreamOption {
	return func(c *streamConfig) { c.halfOpen = true }
}

// WithReadTimeout closes the stream with ErrTimeout when a read stays
// pending longer than d (a slowloris guard). See SetReadTimeout.
func WithReadTimeout(d time.Duration) StreamOption {
	return func(c *streamConfig) { c.readTimeout = d }
}

// NewStream wraps fd, which must be open and pollable, in a Stream on loop
// l. It sets O_NONBLOCK, and from now on the Stream owns fd (Close closes
// it). The fd is registered with the loop lazily, on the first request that
// needs readiness.
//
// The stream follows the fd's access mode: on a write-only fd (a pipe's
// write end) reads fail with an error wrapping EBADF and the stream never
// calls read(2), so a reader that goes away is reported as EPIPE; on a
// read-only fd, Write fails the same way.
//
// NewStream is safe from any goroutine; see Stream for the goroutines that
// may then use the stream.
func NewStream(l *IOLoop, fd int, opts ...StreamOption) (*Stream, error) {
	if l == nil {
		return nil, errors.New("ioloop: NewStream: nil loop")
	}
	if fd < 0 {
		return nil, os.NewSyscallError("NewStream", unix.EBADF)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	if fl&unix.O_NONBLOCK == 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_NONBLOCK); err != nil {
			return nil, os.NewSyscallError("fcntl", err)
		}
	}
	_, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	s := newStream(l, fd, err == nil, newStreamConfig(opts))
	s.set(fOwnCfg)
	s.setTo(fNoRead, fl&unix.O_ACCMODE == unix.O_WRONLY)
	s.setTo(fNoWrite, fl&unix.O_ACCMODE == unix.O_RDONLY)
	return s, nil
}

// newStreamConfig applies opts to the defaults.
func newStreamConfig(opts []StreamOption) *streamConfig {
	c := &streamConfig{
		initialRead:      defaultInitialRead,
		maxRead:          defaultMaxRead,
		maxWrite:         defaultMaxWrite,
		handshakeTimeout: DefaultHandshakeTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	if c.initialRead > c.maxRead {
		c.initialRead = c.maxRead
	}
	return c
}

// newStream builds a Stream for an fd already known to be non-blocking.
// cfg may be shared with other streams (a server's): the stream copies it
// before changing it.
func newStream(l *IOLoop, fd int, sock bool, cfg *streamConfig) *Stream {
	s := &Stream{
		loop:  l,
		fd:    fd,
		cfg:   cfg,
		flags: fWritable,
	}
	s.setTo(fSock, sock)
	return s
}

// callerOwns reports whether the calling goroutine may use s (see Stream):
// it runs s's loop, or that loop is not running. It costs an atomic load
// and, while the loop runs, a goroutine identity read (a few ns): only the
// public entry points call it, never the per-event path.
func (s *Stream) callerOwns() bool {
	o := s.loop.owner.Load()
	return o == 0 || o == goid.Current()
}

// hop queues fn on s's loop for a caller on another goroutine. It reports
// whether fn was queued: a closed loop runs nothing any more.
func (s *Stream) hop(fn func()) bool {
	return s.loop.AddCallback(fn) == nil
}

// Loop returns the loop the stream runs on. Safe from any goroutine.
func (s *Stream) Loop() *IOLoop { return s.loop }

// Fd returns the descriptor, or -1 once the stream is closed. Like every
// accessor, loop goroutine only (see Stream).
func (s *Stream) Fd() int { return s.fd }

// Closed reports whether the stream is closed. Data already buffered can
// still be read from a closed stream. Loop goroutine only.
func (s *Stream) Closed() bool { return s.is(fClosed) }

// Err returns why the stream closed: nil while open or after Close, io.EOF
// when the peer closed, otherwise the error that ended it. Loop goroutine
// only.
func (s *Stream) Err() error { return s.cause() }

// Buffered returns the number of bytes read from the fd and not yet
// consumed by a read callback (over TLS, decrypted bytes; crypto/tls may
// hold more). Loop goroutine only.
func (s *Stream) Buffered() int { return s.read.end - s.read.start }

// SetCloseCallback sets fn to run once, on the loop goroutine, after the
// stream closes and every pending read and write callback has been told.
// fn gets Err(). Setting it on a stream that already closed schedules it.
//
// From another goroutine while the loop runs, it is applied on the loop
// shortly after (through AddCallback, so in order with a Close queued
// after it); it has no error to return, and a closed stream still gets
// its callback. On a closed loop, which runs nothing any more, it is
// dropped.
//
// A peer's close is noticed by reading: while a read is pending, or while
// the read buffer is empty (the stream then reads ahead). With data
// buffered and no read pending the stream stops reading (the loop must
// not spin on data nobody asked for), so the close is seen once the
// buffered data has been read.
func (s *Stream) SetCloseCallback(fn func(error)) {
	if !s.callerOwns() {
		s.hop(func() { s.SetCloseCallback(fn) })
		return
	}
	if fn != nil || s.x != nil {
		s.ext().closeCb = fn
	}
	if s.is(fClosed) && s.is(fCloseDone) && fn != nil {
		s.clear(fCloseDone)
		s.kick()
		return
	}
	if !s.is(fInRun) {
		s.updateInterest() // reading ahead is how a close is noticed
	}
}

// SetReadTimeout closes the stream with ErrTimeout when a read stays
// pending longer than d; 0 disables. It applies from the next read. From
// another goroutine it hops to the loop, as SetCloseCallback does.
func (s *Stream) SetReadTimeout(d time.Duration) {
	if !s.callerOwns() {
		s.hop(func() { s.SetReadTimeout(d) })
		return
	}
	if s.cfg.readTimeout == d {
		return
	}
	if !s.is(fOwnCfg) { // shared with the server's other streams
		c := *s.cfg
		s.cfg = &c
		s.set(fOwnCfg)
	}
	s.cfg.readTimeout = d
}

// Close closes the stream now: queued writes are dropped (their callbacks
// get ErrStreamClosed), a pending read that the buffer cannot satisfy
// fails, then the close callback runs with a nil error. Use
// CloseAfterFlush to let queued writes go out first. Idempotent.
//
// Safe from any goroutine: off the loop, the close is queued to the loop
// (AddCallback) and happens there shortly after Close returns; the close
// callback runs once, on the loop, either way. If the loop was closed and
// is finishing its last iteration, nothing can be queued: Close then waits
// for the loop to return and closes the stream itself.
func (s *Stream) Close() {
	if !s.callerOwns() {
		s.closeOffLoop(s.Close)
		return
	}
	if s.is(fClosed) {
		return
	}
	s.closeNow(nil)
	s.kick()
}

// CloseAfterFlush stops reading and accepting writes, and closes the stream
// once the write queue has been flushed (Node's end()). On a socket whose
// peer may still be sending, the close lingers (as nginx's lingering_close
// does): the sending side is shut down and input discarded until the peer's
// EOF, for at most LingerTimeout, because closing a socket with unread
// input makes the kernel send a reset that can destroy the answer just
// written. The close callback runs when the fd is finally closed. Safe
// from any goroutine, as Close is.
func (s *Stream) CloseAfterFlush() {
	if !s.callerOwns() {
		s.closeOffLoop(s.CloseAfterFlush)
		return
	}
	if s.is(fClosed) {
		return
	}
	s.set(fWrClosed)
	s.finishRead(nil)
	if !s.is(fClosing) {
		s.set(fClosing)
		s.closingErr = nil
	}
	s.kick()
}

// closeOffLoop runs closeFn (Close or CloseAfterFlush) on the loop for a
// caller on another goroutine. A loop that is closed but still running
// accepts no callback; it stops within its current iteration, after which
// the stream is the caller's to close (the fd must not leak).
func (s *Stream) closeOffLoop(closeFn func()) {
	if s.hop(closeFn) {
		return
	}
	for !s.callerOwns() {
		time.Sleep(100 * time.Microsecond)
	}
	closeFn()
}

// CloseWrite flushes the write queue, then shuts down the sending side
// (shutdown(SHUT_WR): the peer sees EOF) while reads go on. Sockets only.
// Off the loop it returns ErrNotOnLoop.
func (s *Stream) CloseWrite() error {
	if !s.callerOwns() {
		return ErrNotOnLoop
	}
	if s.is(fClosed) {
		return s.closedErr
	}
	if !s.is(fSock) {
		return os.NewSyscallError("shutdown", unix.ENOTSOCK)
	}
	s.set(fWrClosed)
	s.set(fShutWrPend)
	s.kick()
	return nil
}

// RemoteAddr returns the peer's address for a socket (nil otherwise).
// Loop goroutine only (it caches the address).
func (s *Stream) RemoteAddr() net.Addr {
	if s.peer == nil && s.is(fSock) && s.fd >= 0 {
		if sa, err := unix.Getpeername(s.fd); err == nil {
			s.peer = sockaddrToAddr(sa, s.fd)
		}
	}
	return s.peer
}

// LocalAddr returns the socket's local address (nil otherwise). Loop
// goroutine only (it reads the fd, which the loop may close).
func (s *Stream) LocalAddr() net.Addr {
	if !s.is(fSock) || s.fd < 0 {
		return nil
	}
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return nil
	}
	return sockaddrToAddr(sa, s.fd)
}

// SetNoDelay sets TCP_NODELAY (Nagle off when true). Servers and Connect
// turn it on for TCP by default, as Go's net package does. Off the loop
// it returns ErrNotOnLoop.
func (s *Stream) SetNoDelay(on bool) error {
	if !s.callerOwns() {
		return ErrNotOnLoop
	}
	if s.is(fClosed) {
		return s.closedErr
	}
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(s.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(on)))
}

// SetKeepAlive turns TCP keep-alive probes on with the given idle time and
// interval (0 keeps the kernel's), or off. Off the loop it returns
// ErrNotOnLoop.
func (s *Stream) SetKeepAlive(on bool, idle time.Duration) error {
	if !s.callerOwns() {
		return ErrNotOnLoop
	}
	if s.is(fClosed) {
		return s.closedErr
	}
	if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, boolInt(on)); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	if on && idle > 0 {
		secs := int((idle + time.Second - 1) / time.Second)
		if err := unix.SetsockoptInt(s.fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
		if err := unix.SetsockoptInt(s.fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// streamHandler is how a Stream registers with its loop: converting
// *Stream to *streamHandler and then to Handler allocates nothing, unlike a
// method value.
type streamHandler Stream

func (h *streamHandler) HandleEvents(fd int, ev Events) { (*Stream)(h).run(ev) }

// kick arranges for run to be called soon on the loop goroutine. Inside run
// it does nothing: settle is about to look at everything anyway.
func (s *Stream) kick() {
	if s.is(fInRun) || s.is(fScheduled) {
		return
	}
	s.set(fScheduled)
	if s.is(fInHandler) {
		return // Server.serve runs it as the handler returns
	}
	if s.deferredFn == nil {
		s.deferredFn = s.deferredRun
	}
	if s.loop.AddCallback(s.deferredFn) != nil {
		s.clear(fScheduled) // loop closed: nothing will ever run again
	}
}

func (s *Stream) deferredRun() {
	s.clear(fScheduled)
	s.run(None)
}

// run is the stream's single entry point from the loop: readiness events,
// deferred work and timers all come through here, so callbacks run in one
// place and the interest set is recomputed once per visit.
func (s *Stream) run(ev Events) {
	if s.is(fInRun) {
		return
	}
	s.set(fInRun)
	ok := false
	defer func() {
		if !ok { // a user callback panicked: the loop logs it, we close
			s.releaseRead()
			s.clear(fInRun)
			s.closeNow(errStreamPanic)
			s.kick()
		}
	}()
	if ev&Error != 0 {
		s.errEvent |= ev & Error
	}
	if s.is(fConnecting) {
		if ev&(Write|Error) != 0 {
			s.finishConnect()
		}
	} else {
		if ev&(Write|Error) != 0 {
			s.set(fWritable)
		}
		if ev&(Read|Error) != 0 {
			s.read.ready = true
		}
		if s.is(fProbe) {
			s.clear(fProbe)
			s.read.ready = true
		}
	}
	s.settle()
	if s.errEvent != 0 && !s.is(fClosed) {
		s.handleErrorEvent()
		s.settle()
	}
	s.errEvent = 0
	s.releaseRead()
	s.clear(fInRun)
	ok = true
	s.updateInterest()
}

// settle does everything that can be done without waiting: serve the
// pending read from the buffer (reading more when the last read filled it),
// flush writes, run completed write callbacks, finish a close. User
// callbacks may queue more work, so it loops until nothing moves.
func (s *Stream) settle() {
	for {
		if s.flags&(fConnecting|fHandshaking) != 0 {
			if s.is(fHandshaking) && s.settleHandshake() {
				continue
			}
			return
		}
		if r := &s.read; r.op != opNone {
			// (With nothing buffered a read cannot complete before the
			// read side ends: skip straight to reading.)
			if (r.end > r.start || s.is(fRdDone)) && s.serveRead() {
				continue
			}
			if r.ready && s.fill() {
				continue
			}
		} else if s.read.ready && s.wantsRead() {
			if s.fill() && s.is(fRdDone) {
				continue
			}
		}
		if w := s.wq; w != nil {
			if w.queued > 0 && s.is(fWritable) && !s.is(fClosed) {
				s.flush()
			}
			if s.runWriteCallbacks() {
				continue
			}
		}
		if s.flags&fAttention == 0 {
			return // only reading and writing going on: done
		}
		if s.is(fDrainDue) {
			s.clear(fDrainDue)
			if s.x != nil && s.x.onDrain != nil && !s.is(fClosed) {
				s.x.onDrain()
				continue
			}
		}
		if s.is(fRdDone) && !s.is(fClosed) && !s.is(fClosing) && !s.cfg.halfOpen {
			s.set(fClosing)
			s.closingErr = s.rdCause()
		}
		if s.is(fShutWrPend) && s.queued() == 0 && !s.is(fClosed) {
			if s.is(fTLS) && !s.x.tls.notified {
				// close_notify first; shut down once it has gone out.
				if err := s.sendCloseNotify(); err != nil {
					s.closeNow(err)
				}
				continue
			}
			s.clear(fShutWrPend)
			if err := unix.Shutdown(s.fd, unix.SHUT_WR); err != nil {
				s.closeNow(os.NewSyscallError("shutdown", err))
			}
			continue
		}
		if s.is(fClosing) && s.queued() == 0 && !s.is(fClosed) && !s.is(fLingering) {
			if s.is(fTLS) && !s.x.tls.notified {
				if s.sendCloseNotify() != nil {
					s.closeNow(s.closingErr) // the peer is gone: close as planned
				}
				continue
			}
			if s.is(fSock) && s.rdCause() != io.EOF {
				s.startLinger()
			} else {
				s.closeNow(s.closingErr)
			}
			continue
		}
		if s.is(fLingering) && s.read.ready && !s.is(fClosed) {
			s.lingerDrain()
			continue
		}
		if s.is(fDraining) && !s.is(fClosed) && s.idle() {
			// One last look, so a request already in the kernel is
			// served rather than cut off.
			if !s.is(fRdDone) && s.fill() {
				continue
			}
			if !s.is(fClosed) {
				s.closeNow(ErrShutdown)
			}
			continue
		}
		if s.is(fClosed) && !s.is(fCloseDone) && s.read.op == opNone && !s.writeCallbacksDue() {
			s.set(fCloseDone)
			if s.srv != nil {
				s.srv.streamClosed(s)
			}
			if x := s.x; x != nil && x.closeCb != nil {
				cb := x.closeCb
				x.closeCb = nil
				cb(s.cause())
			}
			continue
		}
		return
	}
}

// idle reports whether a draining stream is only waiting for its peer: a
// read pending, nothing buffered or queued, no callback due.
func (s *Stream) idle() bool {
	return s.read.op != opNone && s.read.end == s.read.start && s.queued() == 0 && !s.writeCallbacksDue()
}

// LingerTimeout bounds a lingering close (see CloseAfterFlush).
const LingerTimeout = 2 * time.Second

// startLinger shuts the sending side down and starts discarding input.
func (s *Stream) startLinger() {
	if err := unix.Shutdown(s.fd, unix.SHUT_WR); err != nil {
		s.closeNow(s.closingErr)
		return
	}
	s.set(fLingering)
	s.read.ready = true
	x := s.ext()
	x.ltimer = s.loop.CallLater(LingerTimeout, func() {
		x.ltimer = nil
		if !s.is(fClosed) {
			s.closeNow(s.closingErr)
			s.run(None)
		}
	})
}

// lingerDrain reads and drops input; EOF or an error ends the linger.
func (s *Stream) lingerDrain() {
	sh := s.loop.sharedStreams()
	s.dropReadBuf(sh) // nobody will read what is left
	buf := sh.rbuf
	if sh.holder != nil {
		buf = make([]byte, defaultInitialRead) // not expected: see releaseRead
	}
	for {
		n, e := rawRead(s.fd, buf)
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			s.read.ready = false
			return
		case e != 0 || n == 0:
			s.closeNow(s.closingErr)
			return
		}
	}
}

// handleErrorEvent deals with EPOLLERR/EPOLLHUP that settle did not turn
// into a close. Both are level-triggered and reported even with no
// interest, so the stream must close or unregister, or the loop would spin.
func (s *Stream) handleErrorEvent() {
	const epollErr, epollHup = 0x8, 0x10
	switch {
	case s.is(fLingering):
		s.closeNow(s.closingErr)
	case s.errEvent&epollErr != 0, s.is(fNoRead):
		// On a write-only fd every Error condition means the reading side
		// is gone (a pipe reports EPOLLERR then).
		s.closeNow(s.socketError())
	case s.is(fRdDone):
		s.closeNow(io.EOF) // hang-up and nothing left to read
	case s.read.ready:
		// The peer hung up but the stream does not read now (see
		// wantsRead: data is buffered and no read is pending): stop
		// watching until the user reads again (no data is lost).
		s.set(fParked)
	}
}

// socketError fetches the pending error of a socket after EPOLLERR.
func (s *Stream) socketError() error {
	if s.is(fSock) {
		if v, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v != 0 {
			return os.NewSyscallError("read", unix.Errno(v))
		}
		return io.EOF
	}
	return os.NewSyscallError("write", unix.EPIPE) // a pipe whose reader went away
}

// closeNow closes the fd and marks the stream closed. Callbacks are
// delivered by settle; callers outside run must kick.
func (s *Stream) closeNow(cause error) {
	if s.is(fClosed) {
		return
	}
	if s.is(fTLS) {
		s.closeTLS(cause) // abort a handshake, or say close_notify
	}
	s.set(fClosed)
	if cause == io.EOF && s.rdErr != nil && s.rdErr.Cause == io.EOF {
		s.closedErr = s.rdErr // the usual end: the read side's EOF closed the stream
	} else {
		s.closedErr = &StreamClosedError{Cause: cause}
	}
	if !s.is(fRdDone) {
		s.set(fRdDone)
		s.rdErr = s.closedErr
	}
	s.read.ready = false
	if s.is(fRegistered) {
		s.clear(fRegistered)
		_ = s.loop.RemoveHandler(s.fd)
	}
	if x := s.x; x != nil {
		s.loop.RemoveTimeout(x.rtimer) // a nil Timeout is a no-op
		s.loop.RemoveTimeout(x.connTimer)
		s.loop.RemoveTimeout(x.ltimer)
		x.rtimer, x.connTimer, x.ltimer = nil, nil, nil
	}
	_ = unix.Close(s.fd)
	s.fd = -1
	if s.wq != nil {
		s.wq.drop()
	}
}

// updateInterest registers, re-registers or unregisters the fd so the loop
// reports exactly what the stream waits for. It is called once per run, so
// a read callback that immediately asks for the next read costs no
// epoll_ctl at all.
func (s *Stream) updateInterest() {
	if s.flags&(fRegistered|fClosed|fConnecting|fLingering|fParked|fShutWrPend|fHandshaking) == fRegistered {
		// The common case, a registered stream reading and writing:
		// nothing to do unless the interest changed.
		want := None
		if s.wantsRead() {
			want = Read
		}
		if s.wq != nil && s.wq.queued > 0 {
			want |= Write
		}
		if want == s.interest {
			return
		}
	}
	if s.is(fClosed) {
		return
	}
	if s.is(fHandshaking) {
		// The handshake goroutine owns the socket (StartTLS unregistered
		// it); nothing to wait for here.
		return
	}
	var want Events
	if s.is(fConnecting) {
		want = Write
	} else {
		if s.is(fLingering) {
			want |= Read
		} else if !s.is(fParked) && s.wantsRead() {
			want |= Read
		}
		if s.queued() > 0 || s.is(fShutWrPend) {
			want |= Write
		}
	}
	if s.is(fParked) && want&Write == 0 {
		if s.is(fRegistered) {
			s.clear(fRegistered)
			_ = s.loop.RemoveHandler(s.fd)
		}
		return
	}
	if !s.is(fRegistered) {
		// A write-only stream notices its reader going away only through
		// the Error event (it never reads), so with a close callback set it
		// registers even with nothing to wait for: epoll reports Error
		// conditions whatever the interest.
		if want == None && !(s.is(fNoRead) && s.x != nil && s.x.closeCb != nil) {
			return
		}
		if err := s.loop.AddHandler(s.fd, (*streamHandler)(s), want); err != nil {
			s.closeNow(err)
			s.kick()
			return
		}
		s.set(fRegistered)
		s.interest = want
		return
	}
	if want != s.interest {
		if err := s.loop.UpdateHandler(s.fd, want); err != nil {
			s.closeNow(err)
			s.kick()
			return
		}
		s.interest = want
	}
}
