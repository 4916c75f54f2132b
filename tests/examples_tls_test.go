//go:build linux

package tests

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptrace"
	"os/exec"
	"strings"
	"testing"
)

// examples/hello -tls-cert -tls-key serves HTTPS, HTTP/1.1 by ALPN: Go's
// http client (trusting the test CA, offering h2 too) gets its answers on
// one kept-alive TLS connection, on one loop and on two, and so does curl
// --cacert; curl without the CA refuses the certificate.
func TestHelloExampleServesHTTPS(t *testing.T) {
	p := pki(t)
	ca, cert, key := p.writeFiles(t, t.TempDir())
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is not installed (apt-get install curl): the HTTPS example is checked with it")
	}
	for _, loops := range []string{"1", "2"} {
		t.Run("loops="+loops, func(t *testing.T) {
			e := startExample(t, "hello", "-tls-cert", cert, "-tls-key", key, "-loops", loops)
			url := "https://" + e.addr + "/"

			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.roots}, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: testTimeout}
			for i := 0; i < 3; i++ {
				reused := false
				trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
				req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("GET %s: %v", url, err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(body) != "Hello, world!" {
					t.Fatalf("answer %d %q, %v", resp.StatusCode, body, err)
				}
				if resp.Proto != "HTTP/1.1" || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "http/1.1" || resp.TLS.Version != tls.VersionTLS13 {
					t.Fatalf("protocol %s, TLS %+v", resp.Proto, resp.TLS)
				}
				if i > 0 && !reused {
					t.Errorf("request %d: a new connection; want the kept-alive one", i)
				}
			}

			// Two URLs: curl asks for both on one connection.
			out, err := exec.Command(curl, "--silent", "--show-error", "--max-time", "10", "--cacert", ca,
				"-w", " %{http_code} %{http_version} %{num_connects}\n", url, url).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if want := "Hello, world! 200 1.1 1\nHello, world! 200 1.1 0\n"; string(out) != want {
				t.Fatalf("curl said %q, want %q", out, want)
			}
			out, err = exec.Command(curl, "--silent", "--show-error", "--max-time", "10", url).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "certificate") {
				t.Fatalf("curl without the CA: %v\n%s", err, out)
			}
		})
	}
}
