//go:build linux

package ioloop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// TLS on a Stream, with the standard library's crypto/tls (Tornado's
// SSLIOStream and start_tls, libevent's OpenSSL bufferevents).
//
// crypto/tls cannot resume a handshake that hit "would block", so the
// handshake runs on a short-lived goroutine of its own: StartTLS takes the
// stream off the loop, hands the goroutine a duplicate of the socket that
// Go's runtime poller drives (an *os.File on a dup, with the handshake
// timeout as its deadline), and the goroutine reports back with
// AddCallback and is gone, its dup closed. From then on the loop does the
// record layer itself: a tls.Conn runs over tlsTransport, a net.Conn whose
// Read is one non-blocking read(2) on the loop (EAGAIN is a temporary
// net.Error, which crypto/tls survives with partial records kept; see
// TestCryptoTLSSurvivesWouldBlock) and whose Write is the stream's own
// write path. No goroutine per connection remains, and the loop never
// blocks.

// TLSRole is the side of the handshake a stream plays.
type TLSRole uint8

const (
	// TLSClient sends the ClientHello (crypto/tls's tls.Client).
	TLSClient TLSRole = iota + 1
	// TLSServer answers it (tls.Server).
	TLSServer
)

// DefaultHandshakeTimeout bounds a TLS handshake unless
// WithHandshakeTimeout says otherwise.
const DefaultHandshakeTimeout = 10 * time.Second

// ErrHandshaking: Write was called on a stream whose TLS handshake is
// still running. Nothing was written; write from StartTLS's callback.
var ErrHandshaking = errors.New("ioloop: TLS handshake in progress; write once StartTLS's callback has run")

var (
	errTLSActive     = errors.New("ioloop: StartTLS: the stream speaks TLS already")
	errTLSConnecting = errors.New("ioloop: StartTLS: the stream is not connected yet (call it from Connect's callback)")
	errTLSNotIdle    = errors.New("ioloop: StartTLS: the stream has a read pending or writes queued; " +
		"start TLS when both are done (e.g. from the last Write's callback)")
	errTLSRole          = errors.New("ioloop: StartTLS: role must be TLSClient or TLSServer")
	errTLSNilConfig     = errors.New("ioloop: TLS: nil *tls.Config")
	errTLSRenegotiation = errors.New("ioloop: StartTLS: TLS renegotiation is not supported on a stream " +
		"(crypto/tls would run it as a blocking handshake on the loop); leave Config.Renegotiation at RenegotiateNever")
	errTLSNoCertificate = errors.New("ioloop: ListenTLS: the tls.Config has no Certificates, GetCertificate or GetConfigForClient")
	// errTLSTruncated is the cause of a stream whose peer closed the
	// connection in the middle of a TLS record (no close_notify).
	errTLSTruncated = fmt.Errorf("tls: connection closed in the middle of a record, without close_notify: %w", io.ErrUnexpectedEOF)
)

// WithHandshakeTimeout bounds the TLS handshake of StartTLS, ListenTLS's
// streams and ConnectTLS (default DefaultHandshakeTimeout, 10 s): a
// handshake still unfinished then fails with an error matching ErrTimeout
// and the stream closes. d <= 0 keeps the default.
func WithHandshakeTimeout(d time.Duration) StreamOption {
	return func(c *streamConfig) {
		if d > 0 {
			c.handshakeTimeout = d
		}
	}
}

// streamTLS is a stream's TLS session. Owned by the loop goroutine, except
// that while the handshake runs (fHandshaking) conn and tr belong to the
// handshake goroutine.
type streamTLS struct {
	conn     *tls.Conn     // the session, over tr
	tr       *tlsTransport // what conn reads and writes
	cb       func(error)   // StartTLS's callback; nil once called
	done     bool          // the handshake goroutine has reported...
	err      error         // ...this
	unhook   func()        // cancels the loop release hook (handshake only)
	timeout  time.Duration // the handshake's budget, for its error
	notified bool          // close_notify was sent (or will never be)
}

// StartTLS turns a connected stream into a TLS stream, as role (TLSServer
// or TLSClient) with cfg, and calls cb once the handshake is over: with
// nil, or with an error matching ErrStreamClosed whose cause says why (an
// x509 error for a certificate the client rejects, a
// *tls.RecordHeaderError for a peer that does not speak TLS, the peer's
// alert as a "remote error", ErrTimeout past the handshake timeout, see
// WithHandshakeTimeout); the stream is closed then. cb runs on the loop
// goroutine, never inside StartTLS; if the loop is closed before the
// handshake is over, cb runs on a goroutine of its own with an error
// wrapping ErrClosed, and the stream is closed.
//
// The handshake runs on a goroutine of its own, over a duplicate of the
// socket driven by Go's runtime poller, because crypto/tls cannot resume
// a handshake that would block; meanwhile the stream is off the loop, and
// Write returns ErrHandshaking. A read requested meanwhile is served once
// the handshake is over; Close aborts it (cb gets the error),
// CloseAfterFlush and CloseWrite take effect after it. The duplicate is
// closed before cb runs, and the goroutine ends as it hands its result to
// the loop. cfg's callbacks (GetCertificate, VerifyPeerCertificate, ...)
// run on that goroutine; a panic there is recovered and logged with its
// stack, as the loop does for its callbacks, and fails the handshake.
//
// Afterwards every read and write of the stream works as before, on
// plaintext, on the loop goroutine: a read callback gets decrypted bytes,
// Write encrypts p and sends the records as it sends bytes (a Write
// callback runs once that write's records are handed to the kernel).
// Over TLS, WriteQueueLen and the WithMaxWriteQueue cap count the queued
// records, ciphertext: a Write is refused when the queue plus len(p) would
// pass the cap, so the queue may pass it by p's record framing (22 bytes
// per record of up to 16 KiB in TLS 1.3). Buffered counts the decrypted
// bytes the stream holds; crypto/tls may hold up to a record more.
// CloseWrite and CloseAfterFlush send close_notify before shutting the
// socket down, and Close sends it when nothing is queued (best effort). A
// peer's close_notify is io.EOF, as is, like crypto/tls, a close at a
// record boundary without one; a close in the middle of a record is an
// error wrapping io.ErrUnexpectedEOF.
//
// Bytes the stream had buffered are taken as the start of the handshake
// (a client that sends its ClientHello right behind a STARTTLS command),
// but a read must not be pending and nothing may be queued for writing:
// StartTLS returns an error and does nothing otherwise (start TLS from the
// last Write's callback). It also returns an error, and cb never runs,
// when it is called off the loop goroutine (ErrNotOnLoop), when the
// stream is closed, speaks TLS already, is still connecting or is not a
// socket, for a nil cfg or cb, and for a client cfg that allows
// renegotiation (which crypto/tls would run as a blocking handshake).
// cfg must not be changed afterwards (see tls.Config).
func (s *Stream) StartTLS(role TLSRole, cfg *tls.Config, cb func(error)) error {
	if !s.callerOwns() {
		return ErrNotOnLoop
	}
	if cb == nil {
		return errNilCallback
	}
	return s.startTLS(role, cfg, time.Time{}, cb)
}

// TLSConnectionState returns the TLS session's state (version, cipher
// suite, ALPN protocol, server name, peer certificates) once the handshake
// has succeeded; ok is false before then and on a stream without TLS.
// Loop goroutine only, like every accessor.
func (s *Stream) TLSConnectionState() (state tls.ConnectionState, ok bool) {
	if !s.is(fTLS) || s.is(fHandshaking) {
		return tls.ConnectionState{}, false
	}
	state = s.x.tls.conn.ConnectionState()
	return state, state.HandshakeComplete
}

// startTLS is StartTLS after the goroutine check; deadline zero means the
// stream's handshake timeout from now.
func (s *Stream) startTLS(role TLSRole, cfg *tls.Config, deadline time.Time, cb func(error)) error {
	switch {
	case s.is(fClosed):
		return s.closedErr
	case s.is(fTLS):
		return errTLSActive
	case s.is(fConnecting):
		return errTLSConnecting
	case !s.is(fSock):
		return os.NewSyscallError("StartTLS", unix.ENOTSOCK)
	case s.is(fRdDone):
		return s.rdErr
	case s.is(fWrClosed):
		return &StreamClosedError{Cause: errWriteClosed}
	case s.read.op != opNone || s.queued() > 0:
		return errTLSNotIdle
	case cfg == nil:
		return errTLSNilConfig
	case role != TLSClient && role != TLSServer:
		return errTLSRole
	case role == TLSClient && cfg.Renegotiation != tls.RenegotiateNever:
		return errTLSRenegotiation
	}
	timeout := s.cfg.handshakeTimeout
	if deadline.IsZero() {
		deadline = time.Now().Add(timeout)
	} else {
		timeout = time.Until(deadline)
	}
	// The goroutine's own descriptor: the stream keeps s.fd, so Close on
	// the loop works as ever, and closing the duplicate wakes the
	// goroutine (Go's poller) at once.
	dfd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	file := os.NewFile(uintptr(dfd), "ioloop-tls-handshake") // pollable: the file is O_NONBLOCK
	if err := file.SetDeadline(deadline); err != nil {
		file.Close()
		return err
	}
	t := &streamTLS{cb: cb, timeout: timeout}
	unhook, ok := s.loop.onRelease(func() { s.tlsLoopReleased(t) })
	if !ok {
		file.Close()
		return fmt.Errorf("ioloop: StartTLS: %w", s.loop.errClosed())
	}
	t.unhook = unhook
	t.tr = &tlsTransport{s: s, file: file, raddr: s.RemoteAddr()}
	if r := &s.read; r.end > r.start {
		t.tr.prefix = append([]byte(nil), r.buf[r.start:r.end]...)
	}
	if s.read.buf != nil {
		if s.read.shared {
			s.dropReadBuf(s.loop.sharedStreams())
		} else {
			s.read.buf, s.read.start, s.read.end = nil, 0, 0 // off the loop's pools: leave it to the GC
		}
	}
	if role == TLSServer {
		t.conn = tls.Server(t.tr, cfg)
	} else {
		t.conn = tls.Client(t.tr, cfg)
	}
	s.ext().tls = t
	if s.is(fRegistered) {
		// The goroutine reads the socket now: the loop must not be told
		// about it (level-triggered, it would spin).
		s.clear(fRegistered)
		_ = s.loop.RemoveHandler(s.fd)
	}
	s.set(fTLS | fHandshaking)
	go t.handshake(s)
	return nil
}

// handshake runs on its own goroutine: the whole handshake, blocking on
// the duplicate socket; then the result hops to the loop, where settle
// finishes it (settleHandshake).
func (t *streamTLS) handshake(s *Stream) {
	err := t.runHandshake(s)
	t.tr.file.Close() // gone before the loop takes the socket back
	// AddCallback fails only once the loop is closed: then its release
	// hook (tlsLoopReleased) closes the stream and tells cb.
	_ = s.loop.AddCallback(func() {
		t.err, t.done = err, true
		s.run(None)
	})
}

// runHandshake runs the handshake, surviving a panic in the application's
// callbacks that crypto/tls calls (GetCertificate, GetConfigForClient,
// VerifyPeerCertificate, ...): it is logged with its stack, as the loop
// logs a panicking callback, and the stream closes with errStreamPanic.
func (t *streamTLS) runHandshake(s *Stream) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.loop.reportPanic(r, "TLS handshake", "connection closed")
			err = errStreamPanic
		}
	}()
	return t.conn.Handshake()
}

// settleHandshake is settle's part while the handshake runs: Write
// callbacks that were due when StartTLS came are told, and once the
// goroutine has reported, the handshake is finished. It reports whether
// anything moved.
func (s *Stream) settleHandshake() bool {
	if s.runWriteCallbacks() {
		return true
	}
	if s.x.tls.done {
		s.finishHandshake()
		return true
	}
	return false
}

// finishHandshake switches the stream to the loop's record layer (or
// closes it) and tells StartTLS's callback. Inside settle.
func (s *Stream) finishHandshake() {
	t := s.x.tls
	t.unhook()
	s.clear(fHandshaking)
	t.tr.file, t.tr.prefix = nil, nil // the transport is the loop's now
	err := t.err
	switch {
	case s.is(fClosed): // closed while the handshake ran
	case err != nil:
		switch {
		case err == errStreamPanic: // logged on the goroutine; says what it is
		case errors.Is(err, os.ErrDeadlineExceeded):
			err = fmt.Errorf("ioloop: TLS handshake not finished within %v: %w", t.timeout.Round(time.Millisecond), ErrTimeout)
		default:
			err = fmt.Errorf("ioloop: TLS handshake: %w", err)
		}
		t.notified = true // no session to close
		s.closeNow(err)
	default:
		// The handshake may have read past its end (a request right
		// behind the client's Finished): crypto/tls holds those bytes,
		// and epoll will not report them. Look at once.
		s.read.ready = true
	}
	var cbErr error
	if s.is(fClosed) {
		cbErr = s.closedErr
	}
	cb := t.cb
	t.cb = nil
	cb(cbErr)
}

// tlsLoopReleased is the loop's release hook while a handshake runs: the
// loop closed first, so the goroutine's report will never run. The loop
// has stopped; the stream is ours to close here, which also wakes the
// handshake goroutine (its duplicate is closed), and cb runs on a
// goroutine of its own, as Connect's does.
func (s *Stream) tlsLoopReleased(t *streamTLS) {
	cb := t.cb
	t.cb = nil
	s.closeNow(ErrClosed)
	s.clear(fHandshaking)
	s.set(fCloseDone)
	if cb != nil {
		err := s.closedErr
		go cb(err)
	}
}

// closeTLS is closeNow's TLS part, before the socket is closed: a running
// handshake is aborted (its goroutine wakes up and reports; the stream
// finishes closing then), and an established session says close_notify
// when the stream closes of its own will (Close, a read timeout, a
// server's shutdown) and nothing is queued ahead of it. The alert goes
// out only if the kernel takes it at once.
func (s *Stream) closeTLS(cause error) {
	t := s.x.tls
	if s.is(fHandshaking) {
		t.tr.file.Close()
		return
	}
	if t.notified {
		return
	}
	t.notified = true
	switch cause {
	case nil, ErrShutdown, ErrTimeout, errStreamPanic:
	default:
		return // the connection failed: nothing to say on it
	}
	if s.queued() == 0 && s.is(fWritable) {
		t.tr.bestEffort = true
		_ = t.conn.CloseWrite()
	}
}

// sendCloseNotify writes close_notify (CloseWrite, CloseAfterFlush); it
// may be queued. The error is the write's, if it failed.
func (s *Stream) sendCloseNotify() error {
	t := s.x.tls
	t.notified = true
	return t.conn.CloseWrite()
}

// fillTLS is fill's read on a TLS stream: decrypted bytes into
// r.buf[r.end:], at most room. crypto/tls keeps raw and decrypted bytes
// the stream cannot see, and epoll cannot see them either, so it reads
// until crypto/tls says "would block" (it needs bytes the kernel does not
// have yet) or the room is full; then read.ready says which.
//
// One shortcut: asking crypto/tls once more only to hear "would block"
// costs a Read call and an allocation inside it (conn.go, readFromUntil).
// The transport follows the record framing of what it hands over
// (tlsTransport.frame), and crypto/tls consumes whole records, reading
// from the socket only once it holds no complete one. So when a Read has
// returned plaintext after this fill found the socket drained (a short
// read(2)), at least one record handed over since crypto/tls last held
// none has been consumed; if only one complete record was handed over
// since then, crypto/tls holds at most the start of the next, which waits
// for the kernel, and epoll will say when: done, without the extra Read.
// (A Read that returns plaintext left from an earlier record can only be
// a fill's first, before any read(2) of that fill.)
func (s *Stream) fillTLS(room int) bool {
	r := &s.read
	t := s.x.tls
	tr := t.tr
	tr.drained = false
	got := false
	for room > 0 {
		n, err := t.conn.Read(r.buf[r.end : r.end+room])
		r.end += n
		room -= n
		got = got || n > 0
		switch {
		case err == nil:
			if room > 0 && tr.drained && tr.synced && tr.records <= 1 {
				tr.records = 0
				r.ready = false
				return got
			}
			continue
		case err == errWouldBlock:
			// crypto/tls asked for more: it had consumed every complete
			// record (plaintext returned with this error, n > 0, was the
			// whole of its record).
			tr.records, tr.synced = 0, true
			r.ready = false
			return got
		case err == io.EOF: // close_notify, or a close at a record boundary
			s.finishRead(io.EOF)
			return true
		case err == io.ErrUnexpectedEOF:
			err = errTLSTruncated
		}
		s.closeNow(err)
		return true
	}
	r.ready = true // crypto/tls or the kernel may hold more
	return got
}

// writeTLS is Write on a TLS stream (after Write's own checks): p is
// encrypted into records that go out, or are queued, as a plain Write's
// bytes would.
func (s *Stream) writeTLS(p []byte, cb func(error)) error {
	if s.is(fHandshaking) {
		return ErrHandshaking
	}
	if max := s.cfg.maxWrite; max > 0 && s.queued()+len(p) > max {
		return ErrWriteQueueFull
	}
	if len(p) > 0 {
		if _, err := s.x.tls.conn.Write(p); err != nil {
			if !s.is(fClosed) {
				s.closeNow(err)
				s.kick()
			}
			return s.closedErr
		}
	}
	if cb != nil {
		s.addWriteWaiter(cb)
	}
	return nil
}

// ListenTLS is Listen with TLS: every accepted connection does its
// handshake with cfg (on a goroutine of its own, see StartTLS; bounded by
// WithHandshakeTimeout in WithStreamOptions, 10 s by default), and
// handler gets the stream once it succeeded, on the loop goroutine; the
// stream's TLSConnectionState tells the ALPN protocol and the peer's
// certificates. A connection whose handshake fails (a client that does
// not speak TLS, rejects the certificate, or stalls) is closed, logged at
// debug level and counted (Server.TLSHandshakeFailures). Shutdown lets a
// handshake in progress finish (within its timeout), as it lets a busy
// stream finish. It is Listen(l, network, addr, handler, append(opts,
// WithTLS(cfg))...); ListenGroup takes WithTLS too.
func ListenTLS(l *IOLoop, network, addr string, cfg *tls.Config, handler StreamHandler, opts ...ServerOption) (*Server, error) {
	if cfg == nil {
		return nil, errTLSNilConfig
	}
	return Listen(l, network, addr, handler, append(opts[:len(opts):len(opts)], WithTLS(cfg))...)
}

// WithTLS makes a server (Listen, ListenGroup) speak TLS with cfg: see
// ListenTLS. cfg must not be changed afterwards (see tls.Config).
func WithTLS(cfg *tls.Config) ServerOption {
	return func(c *serverConfig) { c.tls = cfg }
}

// checkServerTLS rejects, at Listen, a config no handshake could succeed
// with (crypto/tls would say so once per connection).
func checkServerTLS(cfg *tls.Config) error {
	if cfg.Certificates == nil && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return errTLSNoCertificate
	}
	return nil
}

// handshake starts a new stream's server handshake; the handler gets the
// stream once it succeeded.
func (sv *Server) handshake(s *Stream, peer net.Addr) {
	err := s.startTLS(TLSServer, sv.cfg.tls, time.Time{}, func(err error) {
		if err != nil {
			sv.handshakeFailed(peer, err)
			return
		}
		sv.callHandler(s, peer)
	})
	if err != nil { // no descriptor for the goroutine (EMFILE), or a closed loop
		s.closeNow(err)
		sv.handshakeFailed(peer, err)
		s.kick()
	}
}

// handshakeFailed counts and logs a failed handshake (not one that a
// Close or Shutdown of the server, or the loop's Close, cut short).
func (sv *Server) handshakeFailed(peer net.Addr, err error) {
	if errors.Is(err, ErrShutdown) || errors.Is(err, ErrClosed) {
		return
	}
	if sv.log.Enabled(context.Background(), slog.LevelDebug) { // no formatting when debug is off
		sv.log.Debug("ioloop: TLS handshake failed; connection closed", "addr", sv.addr.String(), "peer", peer, "err", err)
	}
	sv.tlsFailures.Add(1)
}

// TLSHandshakeFailures returns how many accepted connections a TLS server
// closed because their handshake failed (see ListenTLS). Safe from any
// goroutine.
func (sv *Server) TLSHandshakeFailures() int64 { return sv.tlsFailures.Load() }

// ConnectTLS is Connect followed by a client handshake with cfg (see
// StartTLS): cb gets the stream once the handshake succeeded, or an error
// (Connect's, or the handshake's: an x509 error for a certificate that
// does not verify, the server's alert, ErrTimeout) and no stream. timeout,
// when positive, bounds the connect and the handshake together; else the
// handshake has its own timeout (WithHandshakeTimeout in opts, 10 s by
// default). When cfg.ServerName is empty, the host part of addr is used
// (on a copy of cfg), as tls.Dial does. cb runs on the loop goroutine,
// except after the loop has closed, when it runs on a goroutine of its
// own. Safe from any goroutine.
func ConnectTLS(l *IOLoop, network, addr string, timeout time.Duration, cfg *tls.Config, cb func(*Stream, error), opts ...StreamOption) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	wrap := func(err error) error { return fmt.Errorf("ioloop: connect %s %s: %w", network, addr, err) }
	if cfg == nil {
		Connect(l, network, addr, timeout, func(s *Stream, err error) {
			if err == nil {
				s.Close()
				err = wrap(errTLSNilConfig)
			}
			cb(nil, err)
		}, opts...)
		return
	}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
	}
	Connect(l, network, addr, timeout, func(s *Stream, err error) {
		if err != nil {
			cb(nil, err)
			return
		}
		err = s.startTLS(TLSClient, cfg, deadline, func(err error) {
			if err != nil {
				var ce *StreamClosedError
				if errors.As(err, &ce) && ce.Cause != nil {
					err = ce.Cause
				}
				cb(nil, wrap(err))
				return
			}
			cb(s, nil)
		})
		if err != nil {
			s.Close()
			cb(nil, wrap(err))
		}
	}, opts...)
}
