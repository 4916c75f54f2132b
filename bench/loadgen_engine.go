//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The engine is a client-side event loop per worker (one locked OS thread,
// one epoll instance), doing its non-blocking reads and writes with
// unix.RawSyscall. A goroutine-per-connection client costs about what the Go
// net server costs per round trip; this one costs about what the C server
// does, so the load generator stays off the critical path as long as it can
// on a 2-core machine — and reports its own CPU use when it cannot.

// lconn is one client connection. Owned by its worker goroutine.
type lconn struct {
	fd    int
	id    int
	seq   uint64 // operations (echo) or batches (http) started
	out   []byte // the current request
	sent  int    // bytes of out written
	rbuf  []byte
	got   int   // bytes in rbuf
	need  int   // http: responses still due in the current batch
	start int64 // ns since the run's epoch, when the current request started
	ops   int64 // operations completed, all phases
	outEv bool  // registered for EPOLLOUT
}

// runShared is what the workers of one run share.
type runShared struct {
	cfg     LoadConfig
	epoch   time.Time
	pattern []byte // echo payloads are windows of it, different per message
	request []byte // http: Depth pipelined requests
	t0, t1  int64  // the timed window, ns since epoch
	failed  atomic.Bool
	errOnce sync.Once
	err     error

	// Filled by the worker that crosses the window's edges.
	sampleMu           sync.Mutex
	srv0, srv1         float64
	self0, self1       float64
	sampled0, sampled1 bool
	sampleErr          error
}

func (s *runShared) fail(err error) {
	s.errOnce.Do(func() { s.err = err })
	s.failed.Store(true)
}

func (s *runShared) now() int64 { return int64(time.Since(s.epoch)) }

// sample records the server's and this process's CPU time at a window edge.
func (s *runShared) sample(end bool) {
	s.sampleMu.Lock()
	defer s.sampleMu.Unlock()
	if (!end && s.sampled0) || (end && s.sampled1) {
		return
	}
	self := selfCPU()
	var srv float64
	if s.cfg.ServerPID > 0 {
		var err error
		if srv, err = procCPU(s.cfg.ServerPID); err != nil && s.sampleErr == nil {
			s.sampleErr = err
		}
	}
	if end {
		s.srv1, s.self1, s.sampled1 = srv, self, true
	} else {
		s.srv0, s.self0, s.sampled0 = srv, self, true
	}
}

const echoPatternPeriod = 251 // prime: consecutive messages differ at every offset

func runLoad(cfg LoadConfig) (LoadResult, error) {
	if err := cfg.validate(); err != nil {
		return LoadResult{}, err
	}
	if cfg.Mode == "https" {
		return runTLSLoad(cfg)
	}
	s := &runShared{cfg: cfg}
	if cfg.Mode == "echo" {
		s.pattern = make([]byte, cfg.Size+echoPatternPeriod)
		x := uint32(2463534242)
		for i := range s.pattern {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			s.pattern[i] = byte(x)
		}
	} else {
		s.request = bytes.Repeat([]byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n"), cfg.Depth)
	}

	workers := make([]*worker, cfg.Workers)
	for i := range workers {
		n := cfg.Conns / cfg.Workers
		if i < cfg.Conns%cfg.Workers {
			n++
		}
		workers[i] = &worker{s: s, nconn: n, firstID: i * (cfg.Conns/cfg.Workers + 1)}
	}
	// Connect everything and complete one operation on every connection
	// first: the clock starts when the server has accepted all of them. (A
	// server with a short accept backlog, Tornado's 128, leaves connections
	// the client thinks are open waiting a SYN-ACK retransmission, a second
	// or more, which would otherwise land in the window.)
	s.epoch = time.Now()
	s.t0, s.t1 = math.MaxInt64, math.MaxInt64
	if cfg.MaxOps > 0 {
		s.t0 = 0
	}
	ready := make(chan error, len(workers))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ready, start)
		}()
	}
	var connErr error
	for range workers {
		if err := <-ready; err != nil && connErr == nil {
			connErr = err
		}
	}
	if connErr != nil {
		s.fail(connErr)
	}
	if cfg.MaxOps == 0 {
		s.t0 = s.now() + int64(cfg.Warmup)
		s.t1 = s.t0 + int64(cfg.Duration)
	}
	close(start)
	wg.Wait()

	var res LoadResult
	var h histogram
	var counted int64
	for _, w := range workers {
		h.merge(&w.hist)
		counted += w.counted
		for i := range w.conns {
			res.AllOps += w.conns[i].ops
		}
	}
	res.Ops = counted
	res.P50ns = h.quantile(0.50)
	res.P99ns = h.quantile(0.99)
	if cfg.MaxOps > 0 {
		res.Seconds = float64(s.now()) / 1e9
		if want := cfg.checkOps(); s.err == nil && counted != want {
			s.fail(fmt.Errorf("check: %d of %d operations completed within %v", counted, want, cfg.Duration))
		}
	} else {
		res.Seconds = cfg.Duration.Seconds()
	}
	if s.sampled0 && s.sampled1 {
		res.ServerCPU = s.srv1 - s.srv0
		res.LoadgenCPU = s.self1 - s.self0
	}
	if s.err == nil && s.sampleErr != nil {
		s.fail(fmt.Errorf("sampling server CPU: %w", s.sampleErr))
	}
	return res, s.err
}

// worker runs a share of the connections on one locked OS thread.
type worker struct {
	s       *runShared
	nconn   int
	firstID int
	epfd    int
	conns   []lconn
	hist    histogram
	counted int64 // operations completed inside the window
}

func (w *worker) run(ready chan<- error, start <-chan struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer w.closeAll()
	err := w.connect()
	if err == nil && w.s.cfg.MaxOps == 0 {
		err = w.loop(1, w.s.now()+int64(primeTimeout), false)
	}
	ready <- err
	<-start
	if err != nil || w.s.failed.Load() {
		return
	}
	if w.s.cfg.MaxOps > 0 {
		err = w.loop(w.s.cfg.MaxOps, int64(w.s.cfg.Duration), false)
	} else {
		err = w.loop(0, w.s.t1, true)
	}
	if err != nil {
		w.s.fail(err)
	}
}

// primeTimeout bounds the first operation on every connection.
const primeTimeout = 15 * time.Second

func (w *worker) connect() error {
	ap, err := netipAddrPort(w.s.cfg.Addr)
	if err != nil {
		return err
	}
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	rsize := 64 << 10
	if w.s.cfg.Mode == "echo" {
		rsize = w.s.cfg.Size
	}
	w.conns = make([]lconn, w.nconn)
	for i := range w.conns {
		c := &w.conns[i]
		c.fd = -1
		c.id = w.firstID + i
		c.rbuf = make([]byte, rsize)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		c.fd = fd
		// A blocking connect keeps this simple; on loopback it takes
		// microseconds, and the clock has not started yet.
		if err := unix.Connect(fd, ap); err != nil {
			return fmt.Errorf("connect %s (connection %d): %w", w.s.cfg.Addr, c.id, err)
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			return fmt.Errorf("set non-blocking: %w", err)
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	return nil
}

func (w *worker) closeAll() {
	for i := range w.conns {
		if w.conns[i].fd >= 0 {
			unix.Close(w.conns[i].fd)
		}
	}
	if w.epfd > 0 {
		unix.Close(w.epfd)
	}
}

// loop runs the connections until each has completed target operations in
// all (target > 0), or until deadline (ns since the epoch) when target is 0.
// timed samples CPU times at the window's edges.
func (w *worker) loop(target, deadline int64, timed bool) error {
	s := w.s
	remaining := 0 // connections below target
	for i := range w.conns {
		if target > 0 && w.conns[i].ops >= target {
			continue
		}
		remaining++
		if err := w.begin(i, s.now()); err != nil {
			return err
		}
	}
	events := make([]unix.EpollEvent, 256)
	sampled := !timed // this worker has seen the window open
	for {
		now := s.now()
		if !sampled && now >= s.t0 {
			s.sample(false)
			sampled = true
		}
		if target > 0 && remaining == 0 {
			return nil
		}
		if now >= deadline || s.failed.Load() {
			if timed {
				s.sample(true)
			}
			if target == 1 && remaining > 0 {
				return fmt.Errorf("%d of %d connections got no answer to their first request within %v", remaining, len(w.conns), primeTimeout)
			}
			return nil
		}
		n, err := unix.EpollWait(w.epfd, events, 10)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			i := int(ev.Fd)
			c := &w.conns[i]
			if target > 0 && c.ops >= target {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				if err := w.flush(i); err != nil {
					return err
				}
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
				continue
			}
			done, err := w.receive(c)
			if err != nil {
				return err
			}
			if !done {
				continue
			}
			if target > 0 && c.ops >= target {
				remaining--
				continue
			}
			if err := w.begin(i, s.now()); err != nil {
				return err
			}
		}
	}
}

// begin starts the next request on connection i. An HTTP connection's
// first request (ops == 0) goes alone: priming 100 connections with a
// pipelined batch each would take a slow server (Tornado) many seconds.
func (w *worker) begin(i int, now int64) error {
	c := &w.conns[i]
	if w.s.cfg.Mode == "echo" {
		off := int((uint64(c.id)*7 + c.seq) % echoPatternPeriod)
		c.out = w.s.pattern[off : off+w.s.cfg.Size]
	} else if c.ops == 0 && w.s.cfg.MaxOps == 0 {
		c.out = w.s.request[:len(w.s.request)/w.s.cfg.Depth]
		c.need = 1
	} else {
		c.out = w.s.request
		c.need = w.s.cfg.Depth
	}
	c.seq++
	c.sent = 0
	c.start = now
	return w.flush(i)
}

// flush writes what is left of c.out, registering for EPOLLOUT while the
// socket does not take it all.
func (w *worker) flush(i int) error {
	c := &w.conns[i]
	for c.sent < len(c.out) {
		n, errno := rawWrite(c.fd, c.out[c.sent:])
		if errno == unix.EINTR {
			continue
		}
		if errno == unix.EAGAIN {
			break
		}
		if errno == unix.EPIPE || errno == unix.ECONNRESET {
			return fmt.Errorf("connection %d reset by the server after %d operations: %w", c.id, c.ops, errno)
		}
		if errno != 0 {
			return fmt.Errorf("write on connection %d: %w", c.id, errno)
		}
		c.sent += n
	}
	want := c.sent < len(c.out)
	if want != c.outEv {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if want {
			ev.Events |= unix.EPOLLOUT
		}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
			return fmt.Errorf("epoll_ctl: %w", err)
		}
		c.outEv = want
	}
	return nil
}

// receive reads once and reports whether the current request is complete.
func (w *worker) receive(c *lconn) (bool, error) {
	var dst []byte
	if w.s.cfg.Mode == "echo" {
		dst = c.rbuf[c.got:] // never past the message: extra bytes stay queued and fail the next comparison
	} else {
		if c.got == len(c.rbuf) {
			return false, fmt.Errorf("connection %d: %d bytes of responses without a complete one", c.id, c.got)
		}
		dst = c.rbuf[c.got:]
	}
	n, errno := rawRead(c.fd, dst)
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		return false, nil
	case errno == unix.ECONNRESET:
		return false, fmt.Errorf("connection %d reset by the server after %d operations: %w", c.id, c.ops, errno)
	case errno != 0:
		return false, fmt.Errorf("read on connection %d: %w", c.id, errno)
	case n == 0:
		return false, fmt.Errorf("connection %d closed by the server after %d operations", c.id, c.ops)
	}
	c.got += n
	if w.s.cfg.Mode == "echo" {
		if c.got < len(c.rbuf) {
			return false, nil
		}
		if c.sent < len(c.out) {
			return false, fmt.Errorf("connection %d: %d bytes echoed before they were sent", c.id, c.got)
		}
		if !bytes.Equal(c.rbuf, c.out) {
			at := 0
			for at < len(c.out) && c.rbuf[at] == c.out[at] {
				at++
			}
			return false, fmt.Errorf("echo mismatch on connection %d, message %d, byte %d: got %#x, want %#x",
				c.id, c.seq, at, c.rbuf[at], c.out[at])
		}
		c.got = 0
		w.complete(c, 1)
		return true, nil
	}
	return w.parseHTTP(c)
}

// complete records n operations that finished now (one echo round trip, or
// one HTTP response).
func (w *worker) complete(c *lconn, n int64) {
	c.ops += n
	now := w.s.now()
	if now >= w.s.t0 && (w.s.cfg.MaxOps > 0 || now < w.s.t1) {
		w.counted += n
		w.hist.add(now-c.start, uint64(n))
	}
}

var (
	crlfcrlf      = []byte("\r\n\r\n")
	contentLength = []byte("content-length:")
)

// parseHTTP consumes the complete responses in c.rbuf[:c.got]; the batch is
// done when all Depth responses have arrived.
func (w *worker) parseHTTP(c *lconn) (bool, error) {
	buf := c.rbuf[:c.got]
	used := 0
	for c.need > 0 {
		end, err := nextResponse(buf[used:], w.s.cfg.Body)
		if err != nil {
			return false, fmt.Errorf("connection %d: %w", c.id, err)
		}
		if end == 0 {
			break
		}
		used += end
		c.need--
		// Each response is an operation, timed from its batch's send: a
		// slow pipelining server still shows progress inside a window.
		w.complete(c, 1)
	}
	if used > 0 {
		c.got = copy(c.rbuf, buf[used:])
	}
	if c.need > 0 {
		return false, nil
	}
	if c.got != 0 {
		return false, fmt.Errorf("connection %d: %d bytes after the last response of a batch", c.id, c.got)
	}
	return true, nil
}

// nextResponse returns the end of the first response in buf, or 0 while it
// is not complete. Every response must be a 200 with a Content-Length
// (keep-alive framing) and, if body is set, that exact body.
func nextResponse(buf []byte, body string) (int, error) {
	head := bytes.Index(buf, crlfcrlf)
	if head < 0 {
		return 0, nil
	}
	h := buf[:head]
	if len(h) < 12 || !bytes.HasPrefix(h, []byte("HTTP/1.")) || string(h[9:12]) != "200" {
		line, _, _ := bytes.Cut(h, []byte("\r\n"))
		return 0, fmt.Errorf("response %q, want 200", line)
	}
	clen, ok := headerContentLength(h)
	if !ok {
		return 0, errors.New("response without Content-Length")
	}
	end := head + 4 + clen
	if end > len(buf) {
		return 0, nil
	}
	if body != "" && string(buf[head+4:end]) != body {
		return 0, fmt.Errorf("body %q, want %q", buf[head+4:end], body)
	}
	return end, nil
}

// headerContentLength finds Content-Length in a response head, any case.
func headerContentLength(h []byte) (int, bool) {
	for len(h) > 0 {
		line, rest, _ := bytes.Cut(h, []byte("\r\n"))
		h = rest
		if len(line) > len(contentLength) && asciiEqualFold(line[:len(contentLength)], contentLength) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(line[len(contentLength):])))
			return n, err == nil && n >= 0
		}
	}
	return 0, false
}

func asciiEqualFold(a, lower []byte) bool {
	for i := range a {
		b := a[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if b != lower[i] {
			return false
		}
	}
	return true
}

// rawRead and rawWrite skip the scheduler's syscall bookkeeping: safe because
// every socket here is non-blocking, and measured cheaper (see STYLE.md).
func rawRead(fd int, p []byte) (int, unix.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(r), e
}

func rawWrite(fd int, p []byte) (int, unix.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(r), e
}

func netipAddrPort(addr string) (unix.Sockaddr, error) {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen address: %w", err)
	}
	if ip4 := tcp.IP.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: tcp.Port}
		copy(sa.Addr[:], ip4)
		return sa, nil
	}
	return nil, fmt.Errorf("loadgen address %s: only IPv4 loopback is supported", addr)
}
