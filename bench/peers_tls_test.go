//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/cpu"
)

// wantTLS is what every TLS peer must negotiate with the suite's clients:
// TLS 1.3 and X25519, and on AES-NI hardware AES-128-GCM (crypto/tls's
// choice, which the C and nbio peers are set up to make too).
func wantTLS() (version, suite, curve string) {
	suite = "" // another machine prefers ChaCha20-Poly1305: not pinned
	if runtime.GOARCH == "amd64" && cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ {
		suite = "TLS_AES_128_GCM_SHA256"
	}
	return "TLS 1.3", suite, "X25519"
}

// TestTLSPeersServeCorrectly builds the TLS peers and puts them through
// what the https scenarios do (keep-alive and a full handshake per
// request, the certificate verified), plus what a run does not reach: a
// request split across records, an oversized head, echo far past the
// socket buffers in both directions (the C peer's queued SSL_write), and
// what an OpenSSL client — wrk's library, with its default offer —
// negotiates. The ioloop peer serves through ioloop.ListenTLS.
func TestTLSPeersServeCorrectly(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	env := &buildEnv{root: filepath.Dir(wd), bench: wd, out: t.TempDir(), goBin: goBinary()}
	cert := testCert(t)
	for _, p := range []struct {
		Peer
		echo, closesBigHead bool
	}{
		{Peer{Name: "copenssl", Build: buildC("copenssl", []string{"-lssl", "-lcrypto"})}, true, true},
		{Peer{Name: "gonet", Build: buildGoPeer("gonet", []string{"GOMAXPROCS=1"})}, true, true},
		{Peer{Name: "nethttp", Build: buildGoPeer("nethttp", []string{"GOMAXPROCS=1"})}, false, false},
		{Peer{Name: "nbio", Build: buildGoPeer("nbio", nil)}, true, true},
		{Peer{Name: "ioloop", Build: buildGoPeer("ioloop", nil)}, true, true},
	} {
		t.Run(p.Name, func(t *testing.T) {
			launch, err := p.Build(env)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			modes := []string{"hello"}
			if p.echo {
				modes = append(modes, "echo")
			}
			for _, mode := range modes {
				addr, err := freeAddr()
				if err != nil {
					t.Fatal(err)
				}
				argv, penv := launch(mode, addr, 1)
				argv = append(argv, "-tls-cert", cert.Cert, "-tls-key", cert.Key)
				srv, err := startServer(argv, penv, addr, -1)
				if err != nil {
					t.Fatalf("%s: start: %v", mode, err)
				}
				t.Cleanup(srv.stop)
				if mode == "echo" {
					testTLSEcho(t, addr, cert)
				} else {
					testTLSHello(t, addr, cert, p.closesBigHead)
					testOpenSSLNegotiates(t, addr, cert)
				}
				if err := srv.alive(); err != nil {
					t.Errorf("%s: %v", mode, err)
				}
			}
		})
	}
}

func testTLSHello(t *testing.T, addr string, cert tlsFiles, closesBigHead bool) {
	version, suite, curve := wantTLS()
	for _, handshake := range []bool{false, true} {
		res, err := runLoad(LoadConfig{Mode: "https", Handshake: handshake, Addr: addr, Conns: 4, MaxOps: 32,
			Duration: 20 * time.Second, Body: helloBodyText, CAFile: cert.Cert})
		if err != nil {
			t.Errorf("handshake %v: %v", handshake, err)
			continue
		}
		if want := version + ", " + suite + ", " + curve; suite != "" && res.TLS != want {
			t.Errorf("handshake %v: negotiated %q, want %q", handshake, res.TLS, want)
		}
		if !strings.HasPrefix(res.TLS, version+", ") || !strings.HasSuffix(res.TLS, ", "+curve) {
			t.Errorf("handshake %v: negotiated %q", handshake, res.TLS)
		}
	}

	c := dialTLS(t, addr, cert)
	// A head split across two records is answered once, when complete.
	req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	c.Write([]byte(req[:7]))
	time.Sleep(20 * time.Millisecond)
	c.Write([]byte(req[7:]))
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for got.Len() < 64 || !bytes.HasSuffix(got.Bytes(), []byte(helloBodyText)) {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("split request: %q, %v", got.Bytes(), err)
		}
	}
	if end, err := nextResponse(got.Bytes(), helloBodyText); end != got.Len() || err != nil {
		t.Fatalf("split request answered with %q (%v)", got.Bytes(), err)
	}
	// A head over 8 KiB without its end closes the connection (net/http
	// answers 431 first).
	if closesBigHead {
		c.Write(bytes.Repeat([]byte("a"), 9000))
		n, err := c.Read(buf)
		if n != 0 || err == nil || isTimeout(err) {
			t.Errorf("oversized head: read %d bytes, err %v; want the connection closed", n, err)
		}
	}
}

// testTLSEcho sends 1 MiB on each of two connections while reading the
// echo, so the server's writes back up behind a client that is still
// writing.
func testTLSEcho(t *testing.T, addr string, cert tlsFiles) {
	const size = 1 << 20
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i*7 + i>>11)
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			c := dialTLS(t, addr, cert)
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(msg)
				werr <- err
			}()
			got := make([]byte, size)
			_, err := io.ReadFull(c, got)
			if err == nil {
				err = <-werr
			}
			if err == nil && !bytes.Equal(got, msg) {
				err = errors.New("echo differs from what was sent")
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("echo 1 MiB over TLS: %v", err)
		}
	}
}

func dialTLS(t *testing.T, addr string, cert tlsFiles) *tls.Conn {
	t.Helper()
	pem, err := os.ReadFile(cert.Cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// testOpenSSLNegotiates connects with openssl s_client, which offers what
// wrk offers (the same OpenSSL with its defaults: AES-256-GCM first, X25519
// first), and checks the server's choice.
func testOpenSSLNegotiates(t *testing.T, addr string, cert tlsFiles) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl not installed: what an OpenSSL client negotiates is not checked")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-brief", "-CAfile", cert.Cert)
	cmd.Stdin = strings.NewReader("") // EOF: the client says goodbye after the handshake
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl s_client: %v\n%s", err, out)
	}
	_, suite, curve := wantTLS()
	want := []string{"Protocol version: TLSv1.3", "Server Temp Key: " + curve, "Verification: OK"}
	if suite != "" {
		want = append(want, "Ciphersuite: "+suite)
	}
	for _, w := range want {
		if !bytes.Contains(out, []byte(w)) {
			t.Errorf("openssl s_client output lacks %q:\n%s", w, out)
		}
	}
}
