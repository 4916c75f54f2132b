//go:build linux

package ioloop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCryptoTLSSurvivesWouldBlock pins the crypto/tls behaviour the loop's
// TLS record layer stands on (stream_tls.go): after the handshake, a
// tls.Conn reads through tlsTransport, whose Read says EAGAIN as a
// temporary net.Error (errWouldBlock). crypto/tls's record reader
// (conn.go, readRecordOrCCS) must
//
//   - return that very error, unwrapped, without recording it, so the
//     next Read resumes: the partial record stays in its buffer;
//   - do so at every byte of a record, of its header too, and in the
//     middle of a post-handshake message (a TLS 1.3 session ticket) that
//     it handles inside Read;
//   - report close_notify as io.EOF, a close between records as io.EOF,
//     and a close inside a record as io.ErrUnexpectedEOF.
//
// Records written by a crypto/tls peer are captured and fed to the
// stream's socket one byte at a time, with a Read after every byte. If a
// Go release changes any of this, this test fails, and the TLS stream
// must be revisited before that release is used.
func TestCryptoTLSSurvivesWouldBlock(t *testing.T) {
	for _, role := range []TLSRole{TLSServer, TLSClient} {
		name := map[TLSRole]string{TLSServer: "ours is the server", TLSClient: "ours is the client"}[role]
		t.Run(name, func(t *testing.T) {
			p := newPinPair(t, role)
			// What the peer says after the handshake, byte by byte: to a
			// client, the session tickets come first (the server sends them
			// after the client's certificate, so they are post-handshake
			// messages here), then the data.
			msgs := []string{"hello", "a second record", string(make([]byte, 20000))}
			for _, m := range msgs {
				if _, err := p.peer.Write([]byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			records := p.capture.take()
			got := p.feed(records)
			want := ""
			for _, m := range msgs {
				want += m
			}
			if string(got) != want {
				t.Fatalf("read %d bytes, want %d, through a would-block at every byte", len(got), len(want))
			}
			if p.wouldBlocks != len(records) {
				t.Fatalf("%d would-blocks for %d bytes fed one at a time, want one per byte", p.wouldBlocks, len(records))
			}
			if role == TLSClient && p.tickets.puts == 0 {
				t.Fatal("the session ticket fed byte by byte was not taken")
			}

			// close_notify, byte by byte too: then io.EOF.
			if err := p.peer.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			p.feed(p.capture.take())
			if p.last != io.EOF {
				t.Fatalf("after close_notify Read says %v, want io.EOF", p.last)
			}
		})
	}
}

// A connection closed in the middle of a record is io.ErrUnexpectedEOF,
// and one closed between records io.EOF (crypto/tls accepts that, as
// popular sites do it); the stream reports the first as errTLSTruncated.
func TestCryptoTLSEOFInsideAndBetweenRecords(t *testing.T) {
	for _, cut := range []int{0, 3, 7, -1} { // bytes of the record sent before EOF; -1: all of it
		p := newPinPair(t, TLSServer)
		if _, err := p.peer.Write([]byte("truncated")); err != nil {
			t.Fatal(err)
		}
		rec := p.capture.take()
		n := cut
		if cut < 0 {
			n = len(rec)
		}
		p.feed(rec[:n])
		if err := unix.Shutdown(p.peerFD, unix.SHUT_WR); err != nil {
			t.Fatal(err)
		}
		p.feed(nil)
		want := io.ErrUnexpectedEOF
		if cut == 0 || cut < 0 {
			want = io.EOF
		}
		if p.last != want {
			t.Errorf("EOF after %d bytes of a record: Read says %v, want %v", n, p.last, want)
		}
	}
}

// pinPair is a tls.Conn of ours over tlsTransport (after a handshake on
// its duplicate, as StartTLS does it) and a crypto/tls peer whose writes
// after the handshake are captured instead of sent.
type pinPair struct {
	t           *testing.T
	ours        *tls.Conn
	tr          *tlsTransport
	peer        *tls.Conn
	peerFD      int // the peer's end of the socketpair, for raw writes
	capture     *captureConn
	last        error // the last Read's error
	wouldBlocks int
	tickets     *countingCache // the clients' session cache
}

// countingCache counts the session tickets a client stores.
type countingCache struct {
	tls.ClientSessionCache
	mu   sync.Mutex
	puts int
}

func (c *countingCache) Put(key string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	c.ClientSessionCache.Put(key, cs)
}

func newPinPair(t *testing.T, role TLSRole) *pinPair {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(false) })
	s, err := NewStream(l, fds[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	t.Cleanup(func() { unix.Close(fds[1]) })
	dfd, err := unix.FcntlInt(uintptr(fds[0]), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	pfd, err := unix.FcntlInt(uintptr(fds[1]), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	pf := os.NewFile(uintptr(pfd), "peer") // fds[1] stays ours, for raw writes
	pc, err := net.FileConn(pf)
	pf.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := &pinPair{t: t, peerFD: fds[1], capture: &captureConn{Conn: pc}}
	p.tr = &tlsTransport{s: s, file: os.NewFile(uintptr(dfd), "handshake"), raddr: s.RemoteAddr()}
	cert := pinCert(t)
	serverCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	p.tickets = &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	clientCfg := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}, ClientSessionCache: p.tickets}
	if role == TLSServer {
		p.ours, p.peer = tls.Server(p.tr, serverCfg), tls.Client(p.capture, clientCfg)
	} else {
		// Asking for the client's certificate makes the server send its
		// session tickets after the handshake, from the client's view.
		serverCfg.ClientAuth = tls.RequireAnyClientCert
		p.ours, p.peer = tls.Client(p.tr, clientCfg), tls.Server(p.capture, serverCfg)
	}
	t.Cleanup(func() { p.peer.Close() })
	p.peer.SetDeadline(time.Now().Add(10 * time.Second))
	p.tr.file.SetDeadline(time.Now().Add(10 * time.Second))
	errs := make(chan error, 1)
	go func() { errs <- p.ours.Handshake() }()
	if role == TLSServer {
		// The client's last flight is one write; capture from the next.
		p.capture.passWrites = 2
	} else {
		p.capture.passWrites = 1 // the server's first flight
	}
	if err := p.peer.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	p.tr.file.Close()
	p.tr.file = nil // the loop's transport from now on
	return p
}

// feed writes b to our socket one byte at a time and Reads after each,
// returning what was read. With b empty it Reads once.
func (p *pinPair) feed(b []byte) []byte {
	p.t.Helper()
	var got []byte
	buf := make([]byte, 32<<10)
	read := func() {
		for {
			p.tr.drained = false
			n, err := p.ours.Read(buf)
			got = append(got, buf[:n]...)
			p.last = err
			if err == nil {
				continue
			}
			if errors.Is(err, errWouldBlock) && err != errWouldBlock {
				p.t.Fatalf("crypto/tls wrapped the transport's would-block: %v (%T)", err, err)
			}
			if err == errWouldBlock {
				p.wouldBlocks++
			}
			return
		}
	}
	if len(b) == 0 {
		read()
	}
	for i := range b {
		if _, err := unix.Write(p.peerFD, b[i:i+1]); err != nil {
			p.t.Fatal(err)
		}
		read()
		if p.last != errWouldBlock && p.last != nil && i < len(b)-1 {
			p.t.Fatalf("after byte %d of %d: Read says %v (the session is poisoned)", i+1, len(b), p.last)
		}
	}
	return got
}

// captureConn passes its first passWrites writes through and keeps the
// rest, to be sent by the test.
type captureConn struct {
	net.Conn
	mu         sync.Mutex
	passWrites int
	buf        []byte
}

func (c *captureConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.passWrites > 0 {
		c.passWrites--
		return c.Conn.Write(b)
	}
	c.buf = append(c.buf, b...)
	return len(b), nil
}

func (c *captureConn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf
	c.buf = nil
	return b
}

var pinCertOnce struct {
	sync.Once
	cert tls.Certificate
	err  error
}

// pinCert is a self-signed ECDSA certificate (the peers skip verification).
func pinCert(t *testing.T) tls.Certificate {
	t.Helper()
	pinCertOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			pinCertOnce.err = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "pin"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			pinCertOnce.err = err
			return
		}
		pinCertOnce.cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	if pinCertOnce.err != nil {
		t.Fatal(pinCertOnce.err)
	}
	return pinCertOnce.cert
}
