//go:build linux

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The https load generator: crypto/tls clients, one goroutine per
// connection. crypto/tls cannot run on the engine's raw non-blocking fds,
// and on one core the goroutines cost about what the Go net peer costs per
// request: the generator is usually the bottleneck here (its CPU is in the
// report), which leaves the server's CPU per request meaningful.
//
// Every handshake is a full one: the clients keep no session cache
// (ClientSessionCache nil), so the tickets a server sends are never used,
// and a resumed handshake fails the run. They offer only X25519 for the key
// exchange: Go's own default would add X25519MLKEM768, which OpenSSL 3.0
// does not have, and the C peer would then run a different key exchange
// than the Go peers. The cipher suite is the server's choice (AES-128-GCM
// on AES-NI hardware for every peer of the suite); the check records what
// was negotiated and rejects anything but TLS 1.3.

// tlsGen is what the clients of one https run share.
type tlsGen struct {
	s       *runShared
	cfg     *tls.Config
	request []byte
	stop    chan struct{} // closed when the run fails
	once    sync.Once

	mu         sync.Mutex
	open       map[*tls.Conn]bool // closed at once when the run fails, to unblock their readers
	params     map[string]bool    // what the handshakes negotiated
	handshakes int64
}

// tlsClient is one connection (keep-alive) or one sequence of connections
// (Handshake), owned by its goroutine.
type tlsClient struct {
	g        *tlsGen
	id       int
	conn     *tls.Conn // keep-alive: the connection
	deadline int64     // the connection's deadline, ns since the epoch
	rbuf     []byte
	ops      int64 // completed, all phases
	counted  int64 // completed inside the window
	hist     histogram
}

func newTLSGen(s *runShared) (*tlsGen, error) {
	cfg := &tls.Config{
		CurvePreferences:   []tls.CurveID{tls.X25519},
		ClientSessionCache: nil, // no resumption: every handshake is a full one
	}
	if s.cfg.CAFile == "" {
		cfg.InsecureSkipVerify = true // like wrk; the check verifies
	} else {
		pem, err := os.ReadFile(s.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("loadgen: no certificate in %s", s.cfg.CAFile)
		}
		host, _, err := net.SplitHostPort(s.cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("loadgen address: %w", err)
		}
		cfg.ServerName = host
	}
	req := "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
	if s.cfg.Handshake {
		req = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
	}
	return &tlsGen{s: s, cfg: cfg, request: []byte(req), stop: make(chan struct{}),
		open: map[*tls.Conn]bool{}, params: map[string]bool{}}, nil
}

func runTLSLoad(cfg LoadConfig) (LoadResult, error) {
	s := &runShared{cfg: cfg}
	g, err := newTLSGen(s)
	if err != nil {
		return LoadResult{}, err
	}
	// As in the engine: every client completes one request before the
	// clock starts (a check counts from the start instead).
	s.epoch = time.Now()
	s.t0, s.t1 = math.MaxInt64, math.MaxInt64
	if cfg.MaxOps > 0 {
		s.t0 = 0
	}
	clients := make([]*tlsClient, cfg.Conns)
	ready := make(chan error, len(clients))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = &tlsClient{g: g, id: i, rbuf: make([]byte, 4096)}
		wg.Add(1)
		go func(c *tlsClient) {
			defer wg.Done()
			c.run(ready, start)
		}(clients[i])
	}
	for range clients {
		if err := <-ready; err != nil {
			g.fail(err)
		}
	}
	sampled := make(chan struct{})
	if cfg.MaxOps == 0 {
		s.t0 = s.now() + int64(cfg.Warmup)
		s.t1 = s.t0 + int64(cfg.Duration)
		go g.sampleWindow(sampled)
	} else {
		close(sampled)
	}
	close(start)
	wg.Wait()
	<-sampled

	var res LoadResult
	var h histogram
	for _, c := range clients {
		h.merge(&c.hist)
		res.Ops += c.counted
		res.AllOps += c.ops
	}
	res.P50ns = h.quantile(0.50)
	res.P99ns = h.quantile(0.99)
	g.mu.Lock()
	res.Handshakes = g.handshakes
	var params []string
	for p := range g.params {
		params = append(params, p)
	}
	g.mu.Unlock()
	slices.Sort(params)
	res.TLS = strings.Join(params, " | ")
	if cfg.MaxOps > 0 {
		res.Seconds = float64(s.now()) / 1e9
		if want := cfg.checkOps(); s.err == nil && res.Ops != want {
			g.fail(fmt.Errorf("check: %d of %d requests completed within %v", res.Ops, want, cfg.Duration))
		}
	} else {
		res.Seconds = cfg.Duration.Seconds()
	}
	if s.sampled0 && s.sampled1 {
		res.ServerCPU = s.srv1 - s.srv0
		res.LoadgenCPU = s.self1 - s.self0
	}
	if s.err == nil && s.sampleErr != nil {
		g.fail(fmt.Errorf("sampling server CPU: %w", s.sampleErr))
	}
	return res, s.err
}

// sampleWindow samples the CPU times at the window's edges (the clients
// block in crypto/tls, so no client can be relied on to see an edge first).
func (g *tlsGen) sampleWindow(done chan<- struct{}) {
	defer close(done)
	for i, edge := range []int64{g.s.t0, g.s.t1} {
		select {
		case <-time.After(time.Duration(edge - g.s.now())):
		case <-g.stop:
			return
		}
		g.s.sample(i == 1)
	}
}

// fail records the run's first error and closes every open connection, so
// that no client waits for its deadline.
func (g *tlsGen) fail(err error) {
	g.s.fail(err)
	g.once.Do(func() { close(g.stop) })
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.open {
		c.Close()
	}
}

func (c *tlsClient) run(ready chan<- error, start <-chan struct{}) {
	s := c.g.s
	defer c.closeConn()
	var err error
	if s.cfg.MaxOps == 0 {
		err = c.op(s.now() + int64(primeTimeout)) // before the window
		if isTimeout(err) {
			err = fmt.Errorf("connection %d got no answer to its first request within %v", c.id, primeTimeout)
		}
	}
	ready <- err
	<-start
	if err != nil || s.failed.Load() {
		return
	}
	deadline := s.t1 // a request still open at the window's end is not counted
	if s.cfg.MaxOps > 0 {
		deadline = int64(s.cfg.Duration)
	}
	for s.cfg.MaxOps == 0 || c.ops < s.cfg.MaxOps {
		if s.now() >= s.t1 || s.failed.Load() {
			return
		}
		if err := c.op(deadline); err != nil {
			switch {
			case s.failed.Load():
				// Another client failed first and closed this one.
			case isTimeout(err) && s.cfg.MaxOps == 0:
				// The window ended during the request.
			case isTimeout(err):
				c.g.fail(fmt.Errorf("check: connection %d: no answer within %v", c.id, s.cfg.Duration))
			default:
				c.g.fail(err)
			}
			return
		}
	}
}

// op sends one request and reads its response, on a new connection for
// Handshake runs (closed again after the response, as a client does after
// "Connection: close"), else on the client's connection.
func (c *tlsClient) op(deadline int64) error {
	s := c.g.s
	start := s.now()
	if c.conn == nil {
		if err := c.dial(deadline); err != nil {
			return err
		}
	} else if c.deadline != deadline {
		if err := c.conn.SetDeadline(s.epoch.Add(time.Duration(deadline))); err != nil {
			return err
		}
		c.deadline = deadline
	}
	if _, err := c.conn.Write(c.g.request); err != nil {
		return c.connErr("write", err)
	}
	got := 0
	for {
		if got == len(c.rbuf) {
			return fmt.Errorf("connection %d: %d bytes without a complete response", c.id, got)
		}
		n, err := c.conn.Read(c.rbuf[got:])
		got += n
		end, perr := nextResponse(c.rbuf[:got], s.cfg.Body)
		if perr != nil {
			return fmt.Errorf("connection %d: %w", c.id, perr)
		}
		if end > 0 {
			if end != got {
				return fmt.Errorf("connection %d: %d bytes after the response", c.id, got-end)
			}
			break
		}
		if err != nil {
			return c.connErr("read", err)
		}
	}
	c.ops++
	if now := s.now(); now >= s.t0 && now < s.t1 {
		c.counted++
		c.hist.add(now-start, 1)
	}
	if s.cfg.Handshake {
		c.closeConn()
	}
	return nil
}

// dial connects and completes a full handshake, recording what it
// negotiated.
func (c *tlsClient) dial(deadline int64) error {
	g := c.g
	at := g.s.epoch.Add(time.Duration(deadline))
	nc, err := (&net.Dialer{Deadline: at}).Dial("tcp", g.s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("connect %s (connection %d): %w", g.s.cfg.Addr, c.id, err)
	}
	conn := tls.Client(nc, g.cfg)
	g.mu.Lock()
	if g.s.failed.Load() {
		g.mu.Unlock()
		conn.Close()
		return net.ErrClosed
	}
	g.open[conn] = true
	g.mu.Unlock()
	c.conn, c.deadline = conn, deadline
	if err := conn.SetDeadline(at); err != nil {
		return err
	}
	if err := conn.Handshake(); err != nil {
		if isTimeout(err) {
			return err
		}
		return fmt.Errorf("connection %d: TLS handshake after %d requests: %w", c.id, c.ops, err)
	}
	cs := conn.ConnectionState()
	g.mu.Lock()
	g.handshakes++
	g.params[tlsParams(cs)] = true
	g.mu.Unlock()
	switch {
	case cs.DidResume:
		return fmt.Errorf("connection %d: the handshake resumed a session; every one must be full", c.id)
	case cs.Version != tls.VersionTLS13:
		return fmt.Errorf("connection %d: negotiated %s, want TLS 1.3", c.id, tls.VersionName(cs.Version))
	}
	return nil
}

func (c *tlsClient) closeConn() {
	if c.conn == nil {
		return
	}
	c.conn.Close() // sends close_notify first, as any TLS client does
	c.g.mu.Lock()
	delete(c.g.open, c.conn)
	c.g.mu.Unlock()
	c.conn = nil
}

// connErr words a failed read or write on the client's connection.
func (c *tlsClient) connErr(op string, err error) error {
	switch {
	case isTimeout(err):
		return err
	case errors.Is(err, io.EOF):
		return fmt.Errorf("connection %d closed by the server after %d requests", c.id, c.ops)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("connection %d reset by the server after %d requests: %w", c.id, c.ops, err)
	}
	return fmt.Errorf("%s on connection %d: %w", op, c.id, err)
}

// isTimeout: a deadline passed (os.ErrDeadlineExceeded on a connection,
// or the dialer's own timeout error).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// tlsParams names what a handshake negotiated: "TLS 1.3,
// TLS_AES_128_GCM_SHA256, X25519".
func tlsParams(cs tls.ConnectionState) string {
	return fmt.Sprintf("%s, %s, %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), cs.CurveID)
}
