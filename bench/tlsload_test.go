//go:build linux

package main

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCert writes a fresh certificate and key for the test.
func testCert(t *testing.T) tlsFiles {
	t.Helper()
	f, err := writeTLSCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tlsSeen counts what a test server's handshakes negotiated.
type tlsSeen struct {
	mu      sync.Mutex
	params  map[string]int
	resumed int
}

// tinyTLSServer is tinyServer behind crypto/tls with the certificate of
// f, Go's defaults otherwise (session tickets on: a client that resumed
// could). tweak, if not nil, changes the config.
func tinyTLSServer(t *testing.T, f tlsFiles, handle func(net.Conn), tweak func(*tls.Config)) (string, *tlsSeen) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	seen := &tlsSeen{params: map[string]int{}}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, VerifyConnection: func(cs tls.ConnectionState) error {
		seen.mu.Lock()
		defer seen.mu.Unlock()
		seen.params[tlsParams(cs)]++
		if cs.DidResume {
			seen.resumed++
		}
		return nil
	}}
	if tweak != nil {
		tweak(cfg)
	}
	addr := tinyServer(t, func(c net.Conn) { handle(tls.Server(c, cfg)) })
	return addr, seen
}

func TestTLSLoadKeepAlive(t *testing.T) {
	f := testCert(t)
	addr, seen := tinyTLSServer(t, f, httpHandler("200 OK", helloBody), nil)
	res, err := runLoad(LoadConfig{Mode: "https", Addr: addr, Conns: 4, Duration: 10 * time.Second,
		MaxOps: 10, Body: helloBody, CAFile: f.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 40 || res.Handshakes != 4 {
		t.Errorf("%d requests over %d handshakes, want 40 over 4", res.Ops, res.Handshakes)
	}
	// The suite depends on the machine's AES support; the rest is fixed.
	if !strings.HasPrefix(res.TLS, "TLS 1.3, TLS_") || !strings.HasSuffix(res.TLS, ", X25519") || strings.Contains(res.TLS, "|") {
		t.Errorf("negotiated %q, want one TLS 1.3 suite with X25519", res.TLS)
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if len(seen.params) != 1 || seen.params[res.TLS] != 4 {
		t.Errorf("the server saw %v, the client %q", seen.params, res.TLS)
	}
}

// Every request of a handshake run is a new connection with a full
// handshake, although the server hands out session tickets.
func TestTLSLoadHandshakeNeverResumes(t *testing.T) {
	f := testCert(t)
	var mu sync.Mutex
	conns := 0
	addr, seen := tinyTLSServer(t, f, func(c net.Conn) {
		mu.Lock()
		conns++
		mu.Unlock()
		httpHandler("200 OK", helloBody)(c)
	}, nil)
	res, err := runLoad(LoadConfig{Mode: "https", Handshake: true, Addr: addr, Conns: 3,
		Duration: 10 * time.Second, MaxOps: 5, Body: helloBody, CAFile: f.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 15 || res.Handshakes != 15 {
		t.Errorf("%d requests over %d handshakes, want 15 over 15", res.Ops, res.Handshakes)
	}
	seen.mu.Lock()
	resumed := seen.resumed
	seen.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if conns != 15 || resumed != 0 {
		t.Errorf("the server accepted %d connections and resumed %d sessions, want 15 and 0", conns, resumed)
	}
}

func TestTLSLoadTimedWindow(t *testing.T) {
	f := testCert(t)
	addr, _ := tinyTLSServer(t, f, httpHandler("200 OK", helloBody), nil)
	for _, handshake := range []bool{false, true} {
		res, err := runLoad(LoadConfig{Mode: "https", Handshake: handshake, Addr: addr, Conns: 4, Body: helloBody,
			Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond, ServerPID: os.Getpid()})
		if err != nil {
			t.Fatalf("handshake %v: %v", handshake, err)
		}
		if res.Ops == 0 || res.Seconds != 0.2 || res.P50ns <= 0 || res.P99ns < res.P50ns {
			t.Errorf("handshake %v: %d requests over %vs, p50 %d p99 %d", handshake, res.Ops, res.Seconds, res.P50ns, res.P99ns)
		}
		// The "server" is this process, which ran the clients too.
		if res.LoadgenCPU <= 0 || res.ServerCPU <= 0 {
			t.Errorf("handshake %v: server CPU %v, loadgen CPU %v", handshake, res.ServerCPU, res.LoadgenCPU)
		}
		if handshake && res.Handshakes < res.AllOps {
			t.Errorf("%d handshakes for %d requests", res.Handshakes, res.AllOps)
		}
	}
}

func TestTLSLoadRejects(t *testing.T) {
	f, other := testCert(t), testCert(t)
	for _, tc := range []struct {
		name   string
		handle func(net.Conn)
		tweak  func(*tls.Config)
		ca     string
		want   string
	}{
		{"TLS 1.2", httpHandler("200 OK", helloBody), func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, f.Cert, "negotiated TLS 1.2, want TLS 1.3"},
		{"untrusted certificate", httpHandler("200 OK", helloBody), nil, other.Cert, "TLS handshake"},
		{"wrong body", httpHandler("200 OK", "Hello, World?"), nil, f.Cert, "body"},
		{"not 200", httpHandler("500 Oops", helloBody), nil, f.Cert, "want 200"},
		{"closing server", func(c net.Conn) { c.Read(make([]byte, 64)) }, nil, f.Cert, "closed by the server after 0 requests"},
	} {
		addr, _ := tinyTLSServer(t, f, tc.handle, tc.tweak)
		_, err := runLoad(LoadConfig{Mode: "https", Addr: addr, Conns: 2, Duration: 10 * time.Second,
			MaxOps: 3, Body: helloBody, CAFile: tc.ca})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	// Plain HTTP where TLS is expected fails the handshake, and no port
	// fails the connect.
	addr := tinyServer(t, func(c net.Conn) {
		c.Read(make([]byte, 512))
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
	})
	if _, err := runLoad(LoadConfig{Mode: "https", Addr: addr, Conns: 1, Duration: 5 * time.Second, MaxOps: 1}); err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Errorf("plaintext server: err = %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	if _, err := runLoad(LoadConfig{Mode: "https", Addr: addr, Conns: 2, Duration: time.Second}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("no server: err = %v, want connection refused", err)
	}
}

func TestWriteTLSCert(t *testing.T) {
	f := testCert(t)
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	c := pair.Leaf
	if c == nil || c.PublicKeyAlgorithm.String() != "ECDSA" || len(c.IPAddresses) != 2 || c.DNSNames[0] != "localhost" {
		t.Fatalf("certificate: %+v", c)
	}
	if err := c.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if st, err := os.Stat(f.Key); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v", st.Mode(), err)
	}
}
