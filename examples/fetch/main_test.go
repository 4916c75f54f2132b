//go:build linux && cgo

package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func servers(t *testing.T) (ok, missing string, hits *atomic.Int64) {
	t.Helper()
	hits = &atomic.Int64{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("Hello, world!\n"))
	})
	mux.HandleFunc("/missing", http.NotFound)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/", srv.URL + "/missing", hits
}

func runFetch(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// Round-robin over the URLs until -n, with a summary; exit 0.
func TestFetchSummary(t *testing.T) {
	ok, missing, hits := servers(t)
	code, out, _ := runFetch(t, "-c", "4", "-n", "30", "-progress", "0", ok, missing, ok)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"requests:   30 (30 ok, 0 failed)",
		"status:     200 ×20, 404 ×10",
		"bytes:      ",
		"errors:     none",
		"latency:    p50 ",
		"throughput: ",
		"µs per request",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if hits.Load() != 20 {
		t.Errorf("the server saw %d requests to /, want 20", hits.Load())
	}
	// -f makes the 404s failures.
	if code, out, _ := runFetch(t, "-f", "-progress", "0", missing); code != 1 || !strings.Contains(out, "(0 ok, 1 failed)") {
		t.Errorf("-f: exit %d\n%s", code, out)
	}
}

// Transport errors are failures, listed by kind; usage errors exit 2.
func TestFetchFailures(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	refused := srv.URL
	srv.Close()
	code, out, _ := runFetch(t, "-n", "3", "-progress", "0", refused)
	if code != 1 || !strings.Contains(out, "(0 ok, 3 failed)") ||
		!regexp.MustCompile(`errors: .*\(curl error 7\) ×3`).MatchString(out) {
		t.Errorf("refused: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{}, {"-c", "0", "http://x/"}, {"-bogus"}} {
		if code, _, _ := runFetch(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// The command builds and runs as a program, with progress on stderr.
func TestFetchBinary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "fetch")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// An h2c server: -http2 speaks HTTP/2 with prior knowledge to http://.
	var h2 atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			h2.Add(1)
		}
		w.Write([]byte("Hello, world!\n"))
	}))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	ok := srv.URL + "/"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-c", "8", "-n", "2000", "-progress", "1ms", "-http2", ok)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "requests:   2000 (2000 ok, 0 failed)") ||
		!strings.Contains(errb.String(), "fetch: ") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	if h2.Load() != 2000 {
		t.Errorf("%d of 2000 requests over HTTP/2", h2.Load())
	}
	t.Logf("%s", out.String())
	_ = os.Remove(bin)
}
