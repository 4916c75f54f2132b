//go:build linux

package ioloop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrShutdownOnLoop: Shutdown would wait for the loop it runs on.
var ErrShutdownOnLoop = errors.New("ioloop: Shutdown called on the loop goroutine (it blocks; use Close)")

// ShutdownError is what Shutdown returns when its context ended while
// streams were still busy: Closed of them were closed then. It unwraps to
// the context's error, so errors.Is(err, context.DeadlineExceeded) holds.
type ShutdownError struct {
	Closed int   // streams still open when the context ended, closed then
	Err    error // the context's error
}

func (e *ShutdownError) Error() string {
	s := "s"
	if e.Closed == 1 {
		s = ""
	}
	return fmt.Sprintf("ioloop: shutdown: closed %d stream%s still open when the context ended: %v", e.Closed, s, e.Err)
}

func (e *ShutdownError) Unwrap() error { return e.Err }

// StreamHandler serves one accepted connection. It runs on the loop
// goroutine; it typically sets callbacks and starts the first read, and
// must not block.
type StreamHandler func(s *Stream, peer net.Addr)

// Server accepts connections on one listening socket driven by one loop,
// and hands each to a StreamHandler as a Stream (Tornado's TCPServer,
// libevent's evconnlistener).
type Server struct {
	loop    *IOLoop       // fixed
	addr    net.Addr      // bound address; fixed
	tcp     bool          // fixed
	handler StreamHandler // fixed
	cfg     serverConfig  // fixed
	// streamCfg is cfg.streamOpts applied once, shared by every accepted
	// stream (a stream copies it before changing it); fixed.
	streamCfg *streamConfig
	log       *slog.Logger // fixed

	doneCh      chan struct{} // closed once the listener and every stream are closed
	doneOnce    sync.Once
	nStreams    atomic.Int64 // len(streams), written by the loop, read by NumStreams anywhere
	tlsFailures atomic.Int64 // failed TLS handshakes, written by the loop, read anywhere

	// Owned by the loop goroutine once Listen returns.
	fd       int       // listening socket; -1 once closed
	unixPath string    // socket file to remove on close ("" if none)
	streams  []*Stream // open streams, each knows its index
	paused   bool      // accepts paused after EMFILE & co
	starved  bool      // in an EMFILE episode: from the first failure to an accept that finds the backlog empty (logged once)
	backoff  time.Duration
	resumeT  *Timeout
	resumeFn func()
	shutting bool // no more accepts; finish when streams is empty
	rsa      unix.RawSockaddrAny
	salen    uint32
}

// serverConfig is built from ServerOptions.
type serverConfig struct {
	backlog    int
	reusePort  bool
	noDelay    bool
	logger     *slog.Logger
	streamOpts []StreamOption
	loopOpts   []Option
	tls        *tls.Config // WithTLS: every stream does a server handshake first
}

// ServerOption configures Listen and ListenGroup.
type ServerOption func(*serverConfig)

const (
	// defaultBacklog is listen(2)'s backlog and the most connections
	// accepted per readiness event (Tornado accepts up to its backlog).
	defaultBacklog = 1024
	// Accept back-off after EMFILE/ENFILE: short at first, since a closing
	// stream usually frees a descriptor soon (and resumes at once), capped
	// so a starved process checks again every second.
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// WithBacklog sets the listen backlog and the accept batch (default 1024;
// the kernel caps it at net.core.somaxconn).
func WithBacklog(n int) ServerOption {
	return func(c *serverConfig) {
		if n > 0 {
			c.backlog = n
		}
	}
}

// WithReusePort sets SO_REUSEPORT so several listeners (one per loop or
// process) share the port and the kernel spreads connections.
func WithReusePort() ServerOption { return func(c *serverConfig) { c.reusePort = true } }

// WithNoDelay sets TCP_NODELAY on accepted TCP connections (default true,
// as in Go's net package).
func WithNoDelay(on bool) ServerOption { return func(c *serverConfig) { c.noDelay = on } }

// WithServerLogger sets where the server reports accept trouble and
// handler panics (default: the loop's logger).
func WithServerLogger(lg *slog.Logger) ServerOption {
	return func(c *serverConfig) { c.logger = lg }
}

// WithStreamOptions applies opts to every accepted Stream.
func WithStreamOptions(opts ...StreamOption) ServerOption {
	return func(c *serverConfig) { c.streamOpts = append(c.streamOpts, opts...) }
}

// WithLoopOptions passes opts to the loops that ListenGroup creates.
func WithLoopOptions(opts ...Option) ServerOption {
	return func(c *serverConfig) { c.loopOpts = append(c.loopOpts, opts...) }
}

func buildServerConfig(opts []ServerOption) serverConfig {
	c := serverConfig{backlog: defaultBacklog, noDelay: true}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Listen opens a listening socket on network ("tcp", "tcp4", "tcp6" or
// "unix") and addr, and serves it on loop l: every accepted connection
// becomes a Stream passed to handler on the loop goroutine. Port 0 picks a
// free port; see Addr. A unix socket file is removed when the server
// closes. Safe from any goroutine.
func Listen(l *IOLoop, network, addr string, handler StreamHandler, opts ...ServerOption) (*Server, error) {
	if l == nil || handler == nil {
		return nil, errors.New("ioloop: Listen: nil loop or handler")
	}
	cfg := buildServerConfig(opts)
	if cfg.tls != nil {
		if err := checkServerTLS(cfg.tls); err != nil {
			return nil, err
		}
	}
	t, err := resolveTarget(network, addr)
	if err != nil {
		return nil, err
	}
	fd, bound, err := listenSocket(t, cfg)
	if err != nil {
		return nil, err
	}
	path := ""
	if t.family == unix.AF_UNIX && !strings.HasPrefix(addr, "@") {
		path = addr
	}
	sv, err := serveFD(l, fd, bound, t.tcp, path, handler, cfg)
	if err != nil {
		if path != "" {
			os.Remove(path)
		}
		return nil, err
	}
	return sv, nil
}

// listenSocket creates, binds and listens.
func listenSocket(t sockTarget, cfg serverConfig) (int, net.Addr, error) {
	fd, err := openSocket(t)
	if err != nil {
		return -1, nil, err
	}
	fail := func(op string, err error) (int, net.Addr, error) {
		unix.Close(fd)
		return -1, nil, os.NewSyscallError(op, err)
	}
	if t.family != unix.AF_UNIX {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail("setsockopt", err)
		}
		if cfg.reusePort {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				return fail("setsockopt", err)
			}
		}
	}
	if err := unix.Bind(fd, t.sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, cfg.backlog); err != nil {
		return fail("listen", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	return fd, sockaddrToAddr(sa, fd), nil
}

// serveFD registers a listening fd with l.
func serveFD(l *IOLoop, fd int, bound net.Addr, tcp bool, path string, handler StreamHandler, cfg serverConfig) (*Server, error) {
	sv := &Server{
		loop:     l,
		addr:     bound,
		tcp:      tcp,
		handler:  handler,
		cfg:      cfg,
		log:      cfg.logger,
		doneCh:   make(chan struct{}),
		fd:       fd,
		unixPath: path,

		streamCfg: newStreamConfig(cfg.streamOpts),
	}
	if sv.log == nil {
		sv.log = l.Logger()
	}
	sv.resumeFn = sv.resume
	if err := l.AddHandler(fd, (*serverHandler)(sv), Read); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return sv, nil
}

// Addr returns the address the server is bound to.
func (sv *Server) Addr() net.Addr { return sv.addr }

// Loop returns the loop the server runs on.
func (sv *Server) Loop() *IOLoop { return sv.loop }

// NumStreams returns the number of open streams (accepted and not yet
// closed). Safe from any goroutine: it reads a counter the loop keeps,
// one atomic add per accept and per close.
func (sv *Server) NumStreams() int { return int(sv.nStreams.Load()) }

// Done is closed once the server has stopped accepting and every one of
// its streams has closed (after Close or Shutdown).
func (sv *Server) Done() <-chan struct{} { return sv.doneCh }

// Close stops accepting and closes every stream (their close callbacks
// get ErrShutdown). On the loop goroutine it acts at once; from another
// goroutine it is queued to the loop and returns without waiting: wait on
// Done to know it is complete (the loop must be running for that).
func (sv *Server) Close() error {
	if sv.loop.InLoop() {
		sv.closeAll()
		return nil
	}
	return sv.loop.AddCallback(sv.closeAll)
}

// Shutdown stops accepting at once, closes streams as they become idle
// (a read pending with nothing buffered or queued: waiting for the peer),
// and lets busy ones finish, so no write the server has acknowledged is
// lost. When ctx ends first, the remaining streams are closed and a
// *ShutdownError returned that says how many and wraps ctx.Err() (nil if
// the last one finished just then). Shutdown blocks until then, so it
// must be called from another goroutine than the loop's (on the loop it
// returns ErrShutdownOnLoop; use Close there) and while the loop runs.
func (sv *Server) Shutdown(ctx context.Context) error {
	if sv.loop.InLoop() {
		return ErrShutdownOnLoop
	}
	if err := sv.loop.AddCallback(sv.beginShutdown); err != nil {
		return err
	}
	select {
	case <-sv.doneCh:
		return nil
	case <-ctx.Done():
	}
	open := make(chan int, 1)
	if sv.loop.AddCallback(func() { open <- len(sv.streams); sv.closeAll() }) != nil {
		return ctx.Err() // the loop is closed: its streams were closed with it
	}
	n := <-open
	<-sv.doneCh
	if n == 0 {
		return nil
	}
	return &ShutdownError{Closed: n, Err: ctx.Err()}
}

// serverHandler is the listener's Handler (a conversion, no allocation).
type serverHandler Server

func (h *serverHandler) HandleEvents(fd int, ev Events) { (*Server)(h).acceptBatch() }

// acceptBatch accepts until EAGAIN or a backlog's worth, like Tornado.
func (sv *Server) acceptBatch() {
	for i := 0; i < sv.cfg.backlog && sv.fd >= 0 && !sv.paused; i++ {
		nfd, e := rawAccept(sv.fd, &sv.rsa, &sv.salen)
		switch e {
		case 0:
		case unix.EAGAIN:
			if sv.starved { // the backlog is drained: the episode is over
				sv.starved = false
				sv.backoff = 0
				sv.log.Info("ioloop: accepting again", "addr", sv.addr.String())
			}
			return
		case unix.EINTR, unix.ECONNABORTED, unix.EPROTO:
			continue // that connection is gone; the next may be fine
		default:
			// EMFILE, ENFILE, ENOBUFS, ENOMEM, or something unexpected: the
			// connection stays in the backlog, and retrying now would
			// spin, so stop accepting for a while.
			sv.pause(e)
			return
		}
		sv.backoff = 0 // progress: the next pause starts short again
		sv.serve(nfd)
	}
}

// serve wraps an accepted fd in a Stream and calls the handler.
func (sv *Server) serve(nfd int) {
	if sv.tcp && sv.cfg.noDelay {
		rawSetNoDelay(nfd)
	}
	peer := rawToAddr(&sv.rsa)
	s := newStream(sv.loop, nfd, true, sv.streamCfg)
	s.peer = peer
	s.srv = sv
	s.srvIdx = int32(len(sv.streams))
	sv.streams = append(sv.streams, s)
	sv.nStreams.Add(1)
	// What the handler asks of the stream (its first read, typically) is
	// acted on right after it returns, rather than in a callback of the
	// next iteration: same order, one loop round less per connection.
	// With TLS, the handler gets the stream after the handshake.
	s.set(fInHandler)
	if sv.cfg.tls != nil {
		sv.handshake(s, peer)
	} else {
		sv.callHandler(s, peer)
	}
	s.clear(fInHandler)
	if s.is(fScheduled) {
		s.clear(fScheduled)
		s.run(None)
	}
}

// callHandler runs the handler; a panic is logged and closes the stream.
func (sv *Server) callHandler(s *Stream, peer net.Addr) {
	defer func() {
		if r := recover(); r != nil {
			sv.log.Error("ioloop: panic in stream handler; connection closed",
				"addr", sv.addr.String(), "peer", peer, "panic", r, "stack", string(debug.Stack()))
			s.Close()
		}
	}()
	sv.handler(s, peer)
}

// streamClosed is called by a stream of this server once it has closed.
func (sv *Server) streamClosed(s *Stream) {
	i := int(s.srvIdx)
	last := len(sv.streams) - 1
	if i <= last && sv.streams[i] == s {
		sv.streams[i] = sv.streams[last]
		sv.streams[i].srvIdx = int32(i)
		sv.streams[last] = nil
		sv.streams = sv.streams[:last]
		sv.nStreams.Add(-1)
	}
	s.srv = nil
	if sv.paused && sv.starved {
		sv.resume() // a descriptor was just freed: try now
	}
	if sv.shutting && len(sv.streams) == 0 {
		sv.finish()
	}
}

// pause stops accepting and schedules a retry with exponential back-off.
func (sv *Server) pause(e unix.Errno) {
	if !sv.starved {
		sv.starved = true
		sv.log.Warn("ioloop: accept failed; pausing accepts until descriptors free up",
			"addr", sv.addr.String(), "err", os.NewSyscallError("accept4", e))
	}
	sv.backoff = min(max(2*sv.backoff, minAcceptBackoff), maxAcceptBackoff)
	sv.paused = true
	_ = sv.loop.UpdateHandler(sv.fd, None)
	if sv.resumeT != nil {
		sv.loop.RemoveTimeout(sv.resumeT)
	}
	sv.resumeT = sv.loop.CallLater(sv.backoff, sv.resumeFn)
}

// resume re-arms accepting; the level-triggered listener fires at once if
// connections are waiting.
func (sv *Server) resume() {
	if sv.resumeT != nil {
		sv.loop.RemoveTimeout(sv.resumeT)
		sv.resumeT = nil
	}
	if !sv.paused || sv.fd < 0 {
		return
	}
	sv.paused = false
	_ = sv.loop.UpdateHandler(sv.fd, Read)
}

// closeListener stops accepting for good.
func (sv *Server) closeListener() {
	if sv.fd < 0 {
		return
	}
	if sv.resumeT != nil {
		sv.loop.RemoveTimeout(sv.resumeT)
		sv.resumeT = nil
	}
	_ = sv.loop.RemoveHandler(sv.fd)
	_ = unix.Close(sv.fd)
	sv.fd = -1
	if sv.unixPath != "" {
		os.Remove(sv.unixPath)
		sv.unixPath = ""
	}
}

func (sv *Server) beginShutdown() {
	sv.closeListener()
	sv.shutting = true
	for _, s := range sv.streams {
		s.set(fDraining)
		s.kick()
	}
	if len(sv.streams) == 0 {
		sv.finish()
	}
}

func (sv *Server) closeAll() {
	sv.closeListener()
	sv.shutting = true
	for _, s := range append([]*Stream(nil), sv.streams...) {
		s.closeNow(ErrShutdown)
		s.kick()
	}
	if len(sv.streams) == 0 {
		sv.finish()
	}
}

func (sv *Server) finish() { sv.doneOnce.Do(func() { close(sv.doneCh) }) }
