//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWrkTLS pins what https-100 relies on wrk for: Debian's wrk (OpenSSL
// 3) speaks TLS 1.3 with X25519 to crypto/tls, takes the self-signed
// certificate without verifying it, resumes nothing on keep-alive
// connections, and sends no ALPN (so net/http serves HTTP/1.1). It also
// records why https-handshake has its own generator: wrk reconnects only
// when the server closes, and then resumes the session from the ticket it
// was given (wrk keeps its SSL object across reconnects), so its
// "handshakes" would be abbreviated ones.
func TestWrkTLS(t *testing.T) {
	wrk := lookWrk()
	if wrk == "" {
		t.Skip("wrk not installed")
	}
	f := testCert(t)
	_, suite, curve := wantTLS()
	var alpn atomic.Int64 // handshakes that negotiated a protocol
	noteALPN := func(c *tls.Config) {
		c.NextProtos = []string{"http/1.1"}
		verify := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != "" {
				alpn.Add(1)
			}
			return verify(cs)
		}
	}
	run := func(addr string, conns int) wrkResult {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, wrk, "-t1", "-c"+itoa(conns), "-d1s", "--latency", "https://"+addr+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("wrk: %v\n%s", err, out)
		}
		w, err := parseWrk(out)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return w
	}

	addr, seen := tinyTLSServer(t, f, httpHandler("200 OK", helloBody), noteALPN)
	w := run(addr, 4)
	seen.mu.Lock()
	if w.Requests < 100 || w.Errors != "" || seen.resumed != 0 || len(seen.params) != 1 || alpn.Load() != 0 {
		t.Errorf("keep-alive: %d requests (%s), handshakes %v, %d resumed, %d with ALPN", w.Requests, w.Errors, seen.params, seen.resumed, alpn.Load())
	}
	for p, n := range seen.params {
		if !strings.HasPrefix(p, "TLS 1.3, ") || !strings.HasSuffix(p, ", "+curve) || (suite != "" && !strings.Contains(p, suite)) || n > 8 {
			t.Errorf("keep-alive: %d handshakes negotiated %q", n, p)
		}
	}
	seen.mu.Unlock()

	// A server that closes after each response: wrk reconnects, and resumes.
	closing := func(c net.Conn) {
		buf := make([]byte, 4096)
		if _, err := c.Read(buf); err == nil {
			c.Write([]byte("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\n" + helloBody))
		}
	}
	addr, seen = tinyTLSServer(t, f, closing, nil)
	run(addr, 2)
	seen.mu.Lock()
	defer seen.mu.Unlock()
	total := 0
	for _, n := range seen.params {
		total += n
	}
	t.Logf("wrk against a server that closes every connection: %d handshakes, %d of them resumed", total, seen.resumed)
	if total > 10 && seen.resumed == 0 {
		t.Log("this wrk no longer resumes sessions: it could drive https-handshake itself")
	}
}

// Over TLS the wrk window is the difference of two runs, so that the
// connections' handshakes (in both) drop out.
func TestWrkTimedMinus(t *testing.T) {
	short := wrkTimed{wrkResult: wrkResult{Requests: 30000, Seconds: 1, P50: time.Millisecond, P99: 9 * time.Millisecond},
		serverCPU: 0.75, selfCPU: 0.5, wall: 1.05}
	long := wrkTimed{wrkResult: wrkResult{Requests: 70000, Seconds: 2, P50: 2 * time.Millisecond, P99: 8 * time.Millisecond},
		serverCPU: 1.55, selfCPU: 1.1, wall: 2.05}
	run, err := long.minus(short)
	if err != nil {
		t.Fatal(err)
	}
	// 40,000 requests for 0.8 s of server CPU: 20 µs each, where either run
	// alone says 25 µs (its 50 ms of handshakes included) or 22 µs.
	if run.Ops != 40000 || !near(run.CPUPerOpUs, 20) || !near(run.ServerCPUSec, 0.8) || !near(run.OpsPerSec, 40000) ||
		!near(run.LoadgenCPUPct, 60) || run.P50us != 2000 || run.P99us != 8000 {
		t.Errorf("difference: %+v", run)
	}
	if _, err := short.minus(long); err == nil {
		t.Error("a longer run that does less is not an error")
	}
}
