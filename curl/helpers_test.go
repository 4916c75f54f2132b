//go:build linux && cgo

package curl

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// waitLimit bounds every wait in these tests: a hang fails the test.
const waitLimit = 20 * time.Second

// rig is a running loop with a client on it.
type rig struct {
	t    testing.TB
	l    *ioloop.IOLoop
	c    *Client
	logs *syncBuffer
	done chan error
}

func newRig(t testing.TB, opts ...Option) *rig {
	t.Helper()
	logs := &syncBuffer{}
	l, err := ioloop.New(ioloop.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, l: l, logs: logs, done: make(chan error, 1)}
	go func() { r.done <- l.Start() }()
	c, err := NewClient(l, opts...)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	t.Cleanup(func() {
		_ = c.Close()
		_ = l.Close(false)
		select {
		case <-r.done:
		case <-time.After(waitLimit):
			t.Error("the loop did not stop")
		}
	})
	return r
}

// on runs fn on the loop goroutine and waits for it.
func (r *rig) on(fn func()) {
	r.t.Helper()
	ran := make(chan struct{})
	if err := r.l.AddCallback(func() { defer close(ran); fn() }); err != nil {
		r.t.Fatal(err)
	}
	select {
	case <-ran:
	case <-time.After(waitLimit):
		r.t.Fatal("a loop callback did not run")
	}
}

// fetch runs req with Fetch on the loop goroutine and waits for its
// callback, checking that it runs once, on the loop goroutine.
func (r *rig) fetch(req *Request) (*Response, error) {
	r.t.Helper()
	type res struct {
		resp   *Response
		err    error
		inLoop bool
	}
	ch := make(chan res, 2)
	r.on(func() {
		r.c.Fetch(req, func(resp *Response, err error) { ch <- res{resp, err, r.l.InLoop()} })
	})
	select {
	case x := <-ch:
		if !x.inLoop {
			r.t.Error("the Fetch callback ran off the loop goroutine")
		}
		select {
		case <-ch:
			r.t.Error("the Fetch callback ran twice")
		case <-time.After(10 * time.Millisecond):
		}
		return x.resp, x.err
	case <-time.After(waitLimit):
		r.t.Fatal("the Fetch callback did not run")
	}
	return nil, nil
}

// do runs req with Do from the test goroutine.
func (r *rig) do(req *Request) (*Response, error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return r.c.Do(ctx, req)
}

// mustOK fails the test unless the transfer succeeded with status 200.
func mustOK(t testing.TB, resp *Response, err error) *Response {
	t.Helper()
	if err != nil {
		t.Fatalf("transfer failed: %v", err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200 (body %q)", resp.StatusCode, resp.Body)
	}
	return resp
}

// curlErr fails the test unless err is an *Error, and returns it.
func curlErr(t *testing.T, resp *Response, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("transfer succeeded (status %d), want an error", resp.StatusCode)
	}
	if resp != nil {
		t.Errorf("a failed transfer has a response: %+v", resp)
	}
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %T %v, want *Error", err, err)
	}
	return e
}

// ---- servers ----

// connCounter counts the connections a server accepted.
type connCounter struct{ n atomic.Int64 }

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.n.Add(1)
	}
}

var quietLog = log.New(io.Discard, "", 0)

// newServer starts an HTTP/1.1 server on 127.0.0.1 for the test.
func newServer(t *testing.T, h http.Handler) (*httptest.Server, *connCounter) {
	t.Helper()
	cc := &connCounter{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = cc.hook
	srv.Config.ErrorLog = quietLog
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cc
}

// newTLSServer starts an HTTPS server (HTTP/2 offered with h2) and writes
// its certificate to a CA file the client can trust.
func newTLSServer(t *testing.T, h http.Handler, h2 bool) (*httptest.Server, string, *connCounter) {
	t.Helper()
	return newTLSServerWith(t, h, h2, nil)
}

// newTLSServerWith is newTLSServer with a TLS configuration set before the
// server starts.
func newTLSServerWith(t *testing.T, h http.Handler, h2 bool, cfg *tls.Config) (*httptest.Server, string, *connCounter) {
	t.Helper()
	cc := &connCounter{}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.EnableHTTP2 = h2
	srv.Config.ConnState = cc.hook
	srv.Config.ErrorLog = quietLog // handshakes the client aborts (untrusted certificates)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, ca, "CERTIFICATE", srv.Certificate().Raw)
	return srv, ca, cc
}

// newH2CServer starts a cleartext server that speaks HTTP/2 without
// negotiation (prior knowledge) as well as HTTP/1.1.
func newH2CServer(t *testing.T, h http.Handler) (*httptest.Server, *connCounter) {
	t.Helper()
	cc := &connCounter{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = cc.hook
	srv.Config.ErrorLog = quietLog
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cc
}

// rawServer accepts TCP connections on 127.0.0.1 and hands each to serve
// on its own goroutine; it returns the URL prefix.
func rawServer(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// readHead reads a request head from conn (up to the blank line).
func readHead(conn net.Conn) []byte {
	var head []byte
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(waitLimit))
	for !bytes.Contains(head, []byte("\r\n\r\n")) {
		n, err := conn.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			break
		}
	}
	return head
}

// ---- certificates ----

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// clientCertFiles makes a CA and a client certificate signed by it; it
// returns the CA's pool and the client's PEM files.
func clientCertFiles(t *testing.T) (*x509.CertPool, string, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "test client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, certFile, keyFile
}

// ---- process resources ----

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// heapInuse is the Go heap in use after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// rssBytes is the process's resident set (Go and C memory).
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	var size, rss int64
	if _, err := fmt.Sscan(string(b), &size, &rss); err != nil {
		t.Fatal(err)
	}
	return rss * int64(os.Getpagesize())
}

// settle waits until cond holds, polling, up to the wait limit.
func settle(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mustDo runs req with Do and fails the test unless it got a 200.
func (r *rig) mustDo(req *Request) *Response {
	r.t.Helper()
	resp, err := r.do(req)
	return mustOK(r.t, resp, err)
}

// mustFetch runs req with Fetch on the loop and fails the test unless it
// got a 200.
func (r *rig) mustFetch(req *Request) *Response {
	r.t.Helper()
	resp, err := r.fetch(req)
	return mustOK(r.t, resp, err)
}
