package tests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The examples are tested as the benchmarks run them: built with go build
// and started as processes with -addr and -loops.

var buildExamples struct {
	once sync.Once
	dir  string
	err  error
}

// exampleBinary builds examples/name (all three, once per test binary,
// into a directory TestMain removes).
func exampleBinary(t *testing.T, name string) string {
	t.Helper()
	buildExamples.once.Do(func() {
		dir, err := os.MkdirTemp("", "ioloop-examples-")
		if err != nil {
			buildExamples.err = err
			return
		}
		buildExamples.dir = dir
		for _, ex := range []string{"echo", "hello", "fdwatch"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, ex), "github.com/ioloop-go/ioloop/examples/"+ex)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildExamples.err = fmt.Errorf("go build examples/%s: %v\n%s", ex, err, out)
				return
			}
		}
	})
	if buildExamples.err != nil {
		t.Fatal(buildExamples.err)
	}
	return filepath.Join(buildExamples.dir, name)
}

// example is a running example process.
type example struct {
	cmd    *exec.Cmd
	addr   string
	stdout *logBuffer
	stderr *logBuffer
	exited chan error
}

// startExample starts an example on a free port and waits for its
// "listening on ADDR" line. At the end of the test it is sent SIGTERM and
// must exit 0.
func startExample(t *testing.T, name string, args ...string) *example {
	t.Helper()
	bin := exampleBinary(t, name)
	e := &example{stdout: &logBuffer{}, stderr: &logBuffer{}, exited: make(chan error, 1)}
	e.cmd = exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	e.cmd.Stdout = e.stdout
	pr, pw := io.Pipe()
	e.cmd.Stderr = io.MultiWriter(e.stderr, pw)
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.exited <- e.cmd.Wait(); pw.Close() }()
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addrc <- strings.Fields(strings.TrimSuffix(rest, ","))[0]
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case e.addr = <-addrc:
		e.addr = strings.TrimSuffix(e.addr, ",")
	case err := <-e.exited:
		t.Fatalf("%s exited before listening: %v\n%s", name, err, e.stderr.String())
	case <-time.After(testTimeout):
		_ = e.cmd.Process.Kill()
		t.Fatalf("%s did not report its address\n%s", name, e.stderr.String())
	}
	t.Cleanup(func() { e.stop(t) })
	return e
}

// stop sends SIGTERM and checks for a clean exit.
func (e *example) stop(t *testing.T) {
	t.Helper()
	if e.cmd.ProcessState != nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-e.exited:
		if err != nil {
			t.Errorf("%s did not exit cleanly: %v\n%s", e.cmd.Path, err, e.stderr.String())
		}
	case <-time.After(testTimeout):
		_ = e.cmd.Process.Kill()
		t.Errorf("%s ignored SIGTERM", e.cmd.Path)
	}
}

func TestEchoExample(t *testing.T) {
	for _, loops := range []string{"1", "2"} {
		t.Run("loops="+loops, func(t *testing.T) {
			e := startExample(t, "echo", "-loops", loops)
			var wg sync.WaitGroup
			errs := make(chan error, 50)
			for i := 0; i < 50; i++ {
				c := dial(t, "tcp", e.addr)
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- echoRounds(c, rand.New(rand.NewSource(int64(i))), 5, 64<<10)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			e.stop(t)
		})
	}
}

const helloOK = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"

func TestHelloExampleKeepAliveAndPipelining(t *testing.T) {
	e := startExample(t, "hello")
	c := dial(t, "tcp", e.addr)
	// One request at a time on a keep-alive connection.
	for i := 0; i < 3; i++ {
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, c, len(helloOK)); string(got) != helloOK {
			t.Fatalf("response %q", got)
		}
	}
	// Pipelined: 50 requests in one write, some with bodies, split at odd
	// places by a second write.
	var req bytes.Buffer
	for i := 0; i < 50; i++ {
		if i%5 == 0 {
			body := strings.Repeat("b", i*100)
			fmt.Fprintf(&req, "POST /p%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", i, len(body), body)
		} else {
			fmt.Fprintf(&req, "GET /g%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		}
	}
	all := req.Bytes()
	if _, err := c.Write(all[:len(all)/3]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := c.Write(all[len(all)/3:]); err != nil {
		t.Fatal(err)
	}
	got := readN(t, c, 50*len(helloOK))
	if want := strings.Repeat(helloOK, 50); string(got) != want {
		t.Fatalf("pipelined responses differ:\n%q", got)
	}
	// Connection: close gets its answer, then EOF.
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	rest, err := readAll(c)
	if err != nil || !strings.HasSuffix(string(rest), "Hello, world!") || !strings.Contains(string(rest), "Connection: close") {
		t.Fatalf("after Connection: close: %q, %v", rest, err)
	}
}

func TestHelloExampleHTTP10(t *testing.T) {
	e := startExample(t, "hello")
	c := dial(t, "tcp", e.addr)
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(c)
	if err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(string(got), "Hello, world!") {
		t.Fatalf("HTTP/1.0 without keep-alive: %q, %v; want one answer then EOF", got, err)
	}
}

func TestHelloExampleRejectsBadInput(t *testing.T) {
	e := startExample(t, "hello")
	cases := []struct {
		name, req string
		status    string
	}{
		{"malformed request line", "HELLO THERE\r\n\r\n", "400"},
		{"bad header", "GET / HTTP/1.1\r\nno colon here\r\n\r\n", "400"},
		{"head over 8 KiB", "GET / HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", "431"},
		{"chunked body", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "501"},
		{"after a good request", "GET / HTTP/1.1\r\n\r\nBAD\r\n\r\n", "400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, "tcp", e.addr)
			if _, err := c.Write([]byte(tc.req)); err != nil {
				t.Fatal(err)
			}
			got, err := readAll(c)
			if err != nil {
				t.Fatalf("reading the answer: %v (got %q)", err, got)
			}
			s := string(got)
			s = strings.TrimPrefix(s, helloOK)
			if !strings.HasPrefix(s, "HTTP/1.1 "+tc.status+" ") || !strings.Contains(s, "Connection: close\r\n") {
				t.Fatalf("answer %q; want %s then close", got, tc.status)
			}
		})
	}
}

func TestHelloExampleClosesStalledRequests(t *testing.T) {
	e := startExample(t, "hello", "-timeout", "50ms")
	c := dial(t, "tcp", e.addr)
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")); err != nil { // never finished
		t.Fatal(err)
	}
	if got, err := readAll(c); err != nil || len(got) != 0 {
		t.Fatalf("stalled request: %q, %v; want a plain close", got, err)
	}
}

func TestFdwatchExample(t *testing.T) {
	dir := t.TempDir()
	e := startExample(t, "fdwatch", "-dir", dir, "-tick", "20ms", "-loops", "2")
	c := dial(t, "tcp", e.addr)
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || line != "fdwatch: subscribed\n" {
		t.Fatalf("greeting %q, %v", line, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for !(seen["CREATE hello.txt"] && seen["WRITE hello.txt"] && seen["tick"]) {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("subscriber: %v (saw %v)", err, seen)
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "TICK ") {
			line = "tick"
		}
		seen[line] = true
	}
	waitFor(t, "events on stdout", func() bool {
		out := e.stdout.String()
		return strings.Contains(out, "CREATE hello.txt\n") && strings.Contains(out, "WRITE hello.txt\n")
	})
	e.stop(t)
	_ = net.Conn(c)
}

// At SIGTERM the examples close idle connections at once and give busy
// ones -grace; then they say how many they closed, and exit 0. They used
// to print "shutdown: context deadline exceeded", which read as a failure.
func TestExamplesSayWhatShutdownClosed(t *testing.T) {
	const want = "shutdown: closed 1 connection still open after the 200ms grace period\n"
	t.Run("hello, a request half sent", func(t *testing.T) {
		e := startExample(t, "hello", "-grace", "200ms")
		idle, busy := dial(t, "tcp", e.addr), dial(t, "tcp", e.addr)
		for _, c := range []net.Conn{idle, busy} { // both accepted and served once
			if _, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			readN(t, c, len(helloOK))
		}
		if _, err := busy.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
		e.stop(t)
		if got := e.stderr.String(); !strings.HasSuffix(got, want) {
			t.Fatalf("stderr:\n%s\nwant it to end with %q", got, want)
		}
	})
	t.Run("echo, a client that does not read", func(t *testing.T) {
		e := startExample(t, "echo", "-grace", "200ms")
		idle, busy := dial(t, "tcp", e.addr), dial(t, "tcp", e.addr)
		if _, err := idle.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		readN(t, idle, 4)
		// Write without reading until the server has stopped reading too:
		// its answer is queued, so the connection is busy.
		chunk := make([]byte, 64<<10)
		for sent := 0; ; sent += len(chunk) {
			if sent > 1<<30 {
				t.Fatal("1 GiB written and the echo server still reads")
			}
			_ = busy.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := busy.Write(chunk); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				t.Fatal(err)
			}
		}
		e.stop(t)
		if got := e.stderr.String(); !strings.HasSuffix(got, want) {
			t.Fatalf("stderr:\n%s\nwant it to end with %q", got, want)
		}
	})
}
