package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
	"golang.org/x/sys/unix"
)

// echoRounds sends rounds random messages over c and checks each echo.
func echoRounds(c net.Conn, rng *rand.Rand, rounds, maxSize int) error {
	for r := 0; r < rounds; r++ {
		msg := make([]byte, 1+rng.Intn(maxSize))
		rng.Read(msg)
		if _, err := c.Write(msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if !bytes.Equal(got, msg) {
			return errors.New("echo differs from what was sent")
		}
	}
	return nil
}

func TestServerEchoesToAThousandConcurrentClients(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	var open, peak atomic.Int64
	sv := serve(t, l, func(s *ioloop.Stream, p net.Addr) {
		if n := open.Add(1); n > peak.Load() {
			peak.Store(n) // the loop goroutine is the only writer
		}
		s.SetCloseCallback(func(error) { open.Add(-1) })
		echo(s, p)
	})
	const clients = 1000
	var connected, wg sync.WaitGroup
	connected.Add(clients)
	start := make(chan struct{})
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", sv.Addr().String(), testTimeout)
			connected.Done()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * testTimeout))
			<-start // everyone is connected before anyone talks
			errs <- echoRounds(c, rand.New(rand.NewSource(int64(i))), 4, 8<<10)
		}()
	}
	connected.Wait()
	close(start)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			if failed++; failed <= 5 {
				t.Error(err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d clients failed", failed, clients)
	}
	if p := peak.Load(); p != clients {
		t.Fatalf("at most %d streams were open at once; want %d", p, clients)
	}
	waitFor(t, "every stream to close", func() bool { return open.Load() == 0 })
}

func TestServerOnUnixSocket(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	path := filepath.Join(t.TempDir(), "echo.sock")
	sv := serveOn(t, l, "unix", path, echo)
	c := dial(t, "unix", path)
	if err := echoRounds(c, rand.New(rand.NewSource(1)), 3, 100<<10); err != nil {
		t.Fatal(err)
	}
	_ = sv.Close()
	recv(t, sv.Done(), "server closed")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file still there after Close: %v", err)
	}
}

func TestServerOnIPv6AndDualStack(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	v6 := serveOn(t, l, "tcp6", "[::1]:0", echo)
	if err := echoRounds(dial(t, "tcp6", v6.Addr().String()), rand.New(rand.NewSource(1)), 2, 1000); err != nil {
		t.Fatalf("IPv6: %v", err)
	}
	// "tcp" on the wildcard takes both families, as with Go's net.
	dual := serveOn(t, l, "tcp", ":0", echo)
	port := portOf(dual.Addr())
	for _, host := range []string{"127.0.0.1", "::1"} {
		if err := echoRounds(dial(t, "tcp", net.JoinHostPort(host, port)), rand.New(rand.NewSource(2)), 2, 1000); err != nil {
			t.Fatalf("dual stack via %s: %v", host, err)
		}
	}
}

func TestServerReportsPeerAddress(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	peers := make(chan [2]string, 1)
	sv := serve(t, l, func(s *ioloop.Stream, p net.Addr) {
		peers <- [2]string{p.String(), s.RemoteAddr().String()}
		s.Close()
	})
	c := dial(t, "tcp", sv.Addr().String())
	got := recv(t, peers, "peer")
	if got[0] != c.LocalAddr().String() || got[1] != got[0] {
		t.Fatalf("peer %q, RemoteAddr %q; want %q", got[0], got[1], c.LocalAddr())
	}
}

func TestServerHandlerPanicClosesOnlyThatConnection(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	var logs logBuffer
	var n atomic.Int32
	sv := serve(t, l, func(s *ioloop.Stream, p net.Addr) {
		if n.Add(1) == 1 {
			panic("handler bug")
		}
		echo(s, p)
	}, ioloop.WithServerLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	first := dial(t, "tcp", sv.Addr().String())
	if _, err := readAll(first); err != nil {
		t.Fatalf("the panicking handler's connection: %v; want EOF", err)
	}
	if err := echoRounds(dial(t, "tcp", sv.Addr().String()), rand.New(rand.NewSource(1)), 2, 100); err != nil {
		t.Fatalf("next connection: %v", err)
	}
	if !strings.Contains(logs.String(), "handler bug") {
		t.Fatalf("panic not logged: %q", logs.String())
	}
}

// A server acts on what its handler asked of a new stream as soon as the
// handler returns (not in a later loop callback): the first read still
// never completes inside the handler, a request that came with the
// connection is served, and a read callback that panics closes only its
// connection, whose close callback still runs.
func TestServerRunsTheHandlersRequestsAfterItReturns(t *testing.T) {
	checkNoLeaks(t)
	l, logs := runningLoop(t)
	var n atomic.Int32
	closed := make(chan error, 2)
	sv := serve(t, l, func(s *ioloop.Stream, p net.Addr) {
		first := n.Add(1) == 1
		inHandler := true
		s.SetCloseCallback(func(err error) { closed <- err })
		err := s.ReadBytes(5, func(b []byte, err error) {
			if inHandler {
				t.Error("the first read completed inside the handler")
			}
			if err != nil {
				t.Errorf("first read: %v", err)
				return
			}
			if first {
				panic("read callback bug")
			}
			_ = s.Write(b, nil)
			s.CloseAfterFlush()
		})
		if err != nil {
			t.Errorf("ReadBytes: %v", err)
		}
		inHandler = false
	})
	for i := range 2 {
		c := dial(t, "tcp", sv.Addr().String())
		if _, err := c.Write([]byte("hello")); err != nil { // with the connection, before any read is asked
			t.Fatal(err)
		}
		got, err := readAll(c)
		switch {
		case i == 0 && (err != nil || len(got) != 0):
			t.Fatalf("connection whose read callback panicked: %q, %v; want EOF", got, err)
		case i == 1 && (err != nil || string(got) != "hello"):
			t.Fatalf("next connection: %q, %v", got, err)
		}
		if err := recv(t, closed, "close callback"); i == 0 && (err == nil || !strings.Contains(err.Error(), "panicked")) {
			t.Fatalf("close callback after the panic: %v; want the panic's error", err)
		}
	}
	if !strings.Contains(logs.String(), "read callback bug") {
		t.Fatalf("panic not logged: %q", logs.String())
	}
}

func TestServerCloseClosesStreams(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	closed := make(chan error, 1)
	sv := serve(t, l, func(s *ioloop.Stream, p net.Addr) {
		s.SetCloseCallback(func(err error) { closed <- err })
		echo(s, p)
	})
	c := dial(t, "tcp", sv.Addr().String())
	if err := echoRounds(c, rand.New(rand.NewSource(1)), 1, 10); err != nil {
		t.Fatal(err)
	}
	if err := sv.Close(); err != nil {
		t.Fatal(err)
	}
	recv(t, sv.Done(), "Done")
	if err := recv(t, closed, "close callback"); !errors.Is(err, ioloop.ErrShutdown) {
		t.Fatalf("close callback: %v; want ErrShutdown", err)
	}
	if _, err := readAll(c); err != nil {
		t.Fatalf("client: %v; want EOF", err)
	}
	if _, err := net.DialTimeout("tcp", sv.Addr().String(), testTimeout); err == nil {
		t.Fatal("still accepting after Close")
	}
}

func TestGroupSpreadsConnectionsOverLoops(t *testing.T) {
	checkNoLeaks(t)
	var mu sync.Mutex
	seen := map[*ioloop.IOLoop]int{}
	g, err := ioloop.ListenGroup("tcp", "127.0.0.1:0", 2, func(s *ioloop.Stream, p net.Addr) {
		mu.Lock()
		seen[s.Loop()]++
		mu.Unlock()
		echo(s, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Loops()) != 2 {
		t.Fatalf("%d loops; want 2", len(g.Loops()))
	}
	var conns []net.Conn
	for i := 0; i < 64; i++ {
		c := dial(t, "tcp", g.Addr().String())
		if err := echoRounds(c, rand.New(rand.NewSource(int64(i))), 1, 64); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	mu.Lock()
	loops, total := len(seen), 0
	for l, n := range seen {
		total += n
		if l != g.Loops()[0] && l != g.Loops()[1] {
			t.Error("a connection landed on a loop outside the group")
		}
	}
	mu.Unlock()
	if total != 64 || loops < 2 {
		t.Fatalf("64 connections landed on %d loop(s) (%d counted); want both loops used", loops, total)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	if err := g.Shutdown(ctxTimeout(t, testTimeout)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestGroupOnUnixSocket(t *testing.T) {
	checkNoLeaks(t)
	path := filepath.Join(t.TempDir(), "g.sock")
	g, err := ioloop.ListenGroup("unix", path, 2, echo)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		if err := echoRounds(dial(t, "unix", path), rand.New(rand.NewSource(int64(i))), 1, 64); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left behind: %v", err)
	}
}

// TestGracefulShutdownLosesNoAcknowledgedWrite: clients ping-pong while
// the server shuts down; every byte whose Write callback reported success
// must reach its client, in order.
func TestGracefulShutdownLosesNoAcknowledgedWrite(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	var mu sync.Mutex
	acked := map[string]int{} // client address -> bytes acknowledged
	sv := serve(t, l, func(s *ioloop.Stream, p net.Addr) {
		key := p.String()
		var onData func([]byte, error)
		onData = func(b []byte, err error) {
			if err != nil {
				return
			}
			n := len(b)
			_ = s.Write(b, func(err error) {
				if err == nil {
					mu.Lock()
					acked[key] += n
					mu.Unlock()
				}
			})
			_ = s.ReadSome(onData)
		}
		_ = s.ReadSome(onData)
	})
	const clients = 20
	type result struct {
		addr     string
		sent     []byte
		received []byte
	}
	results := make(chan result, clients)
	running := make(chan struct{}, clients)
	for i := 0; i < clients; i++ {
		c := dial(t, "tcp", sv.Addr().String())
		go func() {
			rng := rand.New(rand.NewSource(int64(i)))
			var sent, received []byte
			for round := 0; ; round++ {
				if round == 3 {
					running <- struct{}{}
				}
				msg := make([]byte, 1+rng.Intn(2048))
				rng.Read(msg)
				if _, err := c.Write(msg); err != nil {
					break
				}
				sent = append(sent, msg...)
				got := make([]byte, len(msg))
				n, err := io.ReadFull(c, got)
				received = append(received, got[:n]...)
				if err != nil {
					break
				}
			}
			// Whatever else the server sent before closing.
			rest, _ := io.ReadAll(c)
			results <- result{c.LocalAddr().String(), sent, append(received, rest...)}
		}()
	}
	for i := 0; i < clients; i++ {
		recv(t, running, "clients running")
	}
	if err := sv.Shutdown(ctxTimeout(t, testTimeout)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i := 0; i < clients; i++ {
		r := recv(t, results, "client result")
		mu.Lock()
		a := acked[r.addr]
		mu.Unlock()
		if a == 0 {
			t.Errorf("client %s: nothing acknowledged", r.addr)
		}
		if len(r.received) < a || !bytes.Equal(r.received, r.sent[:len(r.received)]) {
			t.Errorf("client %s: received %d bytes (prefix ok: %v), %d acknowledged", r.addr,
				len(r.received), len(r.received) <= len(r.sent) && bytes.Equal(r.received, r.sent[:len(r.received)]), a)
		}
	}
}

func TestShutdownDeadlineClosesBusyStreams(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	closed := make(chan error, 1)
	sv := serve(t, l, func(s *ioloop.Stream, _ net.Addr) {
		// Busy: not reading, so never idle.
		s.SetCloseCallback(func(err error) { closed <- err })
		_ = s.Write([]byte("hello"), nil)
	})
	c := dial(t, "tcp", sv.Addr().String())
	readN(t, c, 5)
	err := sv.Shutdown(ctxTimeout(t, 50*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v; want DeadlineExceeded", err)
	}
	var cut *ioloop.ShutdownError
	if !errors.As(err, &cut) || cut.Closed != 1 {
		t.Fatalf("Shutdown = %v; want a *ShutdownError with Closed 1", err)
	}
	if err := recv(t, closed, "close callback"); !errors.Is(err, ioloop.ErrShutdown) {
		t.Fatalf("close callback: %v", err)
	}
	if _, err := readAll(c); err != nil {
		t.Fatalf("client: %v", err)
	}
}

// TestServerSurvivesEMFILE runs an echo server in a child process whose
// RLIMIT_NOFILE leaves room for only a few connections, connects many
// more clients, and checks that the server pauses (logging once, not
// spinning through accept), then serves every client as descriptors free
// up.
func TestServerSurvivesEMFILE(t *testing.T) {
	if os.Getenv("IOLOOP_EMFILE_CHILD") == "1" {
		emfileChild()
		return
	}
	checkNoLeaks(t)
	addr, pid, logs := startEMFILEChild(t)

	const clients = 30
	served := make(chan int, clients)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		c := dial(t, "tcp", addr) // completes in the kernel's backlog
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := []byte(fmt.Sprintf("ping %d", i))
			if _, err := c.Write(msg); err != nil {
				return
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				return
			}
			served <- i
			<-release
			_ = c.Close()
		}()
	}
	const warn = "pausing accepts"
	waitFor(t, "the server to run out of descriptors", func() bool { return strings.Contains(logs.String(), warn) })
	// While starved, the server retries on a back-off timer: it must not
	// busy-loop on accept (its CPU time over the first second, when the
	// retries are densest, is a behaviour bound: a spinning accept takes a
	// whole core), and it must not log each retry.
	cpu0, t0 := procCPU(t, pid), time.Now()
	time.Sleep(time.Second)
	cpu1, t1 := procCPU(t, pid), time.Now()
	share := (cpu1 - cpu0).Seconds() / t1.Sub(t0).Seconds()
	t.Logf("EMFILE: %d of %d clients served, the rest waiting; server CPU %v over %v (%.1f%% of one core)",
		len(served), clients, cpu1-cpu0, t1.Sub(t0).Round(time.Millisecond), 100*share)
	if share >= emfileMaxCPU {
		t.Fatalf("server used %.1f%% of a core while pinned at EMFILE; want < %.0f%% (accept is spinning)", 100*share, 100*emfileMaxCPU)
	}
	if n := strings.Count(logs.String(), warn); n != 1 {
		t.Fatalf("%q logged %d times while starved; want once\n%s", warn, n, logs.String())
	}
	if len(served) >= clients {
		t.Fatal("every client was served although the server is out of descriptors")
	}
	close(release) // served clients leave, freeing descriptors
	for i := 0; i < clients; i++ {
		recv(t, served, "every client to be served")
	}
	wg.Wait()
	// A fresh client once the storm is over.
	c := dial(t, "tcp", addr)
	if err := echoRounds(c, rand.New(rand.NewSource(1)), 1, 100); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	waitFor(t, "the recovery to be logged", func() bool { return strings.Contains(logs.String(), "accepting again") })
}

// emfileChild is the server side of TestServerSurvivesEMFILE.
func emfileChild() {
	entries, _ := os.ReadDir("/proc/self/fd")
	var lim unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	lim.Cur = uint64(len(entries) + 8) // the loop and listener take 3 of these
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	l, err := ioloop.New(ioloop.WithLogger(logger))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sv, err := ioloop.Listen(l, "tcp", "127.0.0.1:0", echo, ioloop.WithServerLogger(logger))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(sv.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes stdin to stop us
		l.Stop()
	}()
	if err := l.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(0)
}

// startEMFILEChild re-executes the test binary as the EMFILE child (see
// emfileChild) and returns the address it serves and its pid. The child
// exits when the test ends (its stdin closes); a child that fails or does
// not exit fails the test. logs is the child's stderr.
func startEMFILEChild(t *testing.T) (addr string, pid int, logs *logBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerSurvivesEMFILE$", "-test.count=1")
	cmd.Env = append(os.Environ(), "IOLOOP_EMFILE_CHILD=1")
	logs = &logBuffer{}
	cmd.Stderr = logs
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("child: %v\n%s", err, logs.String())
			}
		case <-time.After(testTimeout):
			_ = cmd.Process.Kill()
			t.Error("child did not exit")
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	go func() { exited <- cmd.Wait() }()
	if err != nil {
		t.Fatalf("child address: %v\n%s", err, logs.String())
	}
	return strings.TrimSpace(line), cmd.Process.Pid, logs
}
