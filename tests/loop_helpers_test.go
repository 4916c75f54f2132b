package tests

import (
	"bytes"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
	"golang.org/x/sys/unix"
)

// testTimeout bounds every wait in these tests: a broken loop fails the
// test instead of hanging CI.
const testTimeout = 10 * time.Second

// newTestLoop returns a fresh loop, closed at the end of the test, and the
// buffer its logger writes to.
func newTestLoop(t *testing.T, opts ...ioloop.Option) (*ioloop.IOLoop, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	opts = append([]ioloop.Option{ioloop.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}, opts...)
	l, err := ioloop.New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = l.Close(false) })
	return l, logs
}

// startLoop runs l.Start on its own goroutine; the returned function stops
// the loop and returns Start's result.
func startLoop(t *testing.T, l *ioloop.IOLoop) (stop func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- l.Start() }()
	waitFor(t, "the loop to start", func() bool {
		ran := make(chan struct{})
		if err := l.AddCallback(func() { close(ran) }); err != nil {
			t.Fatalf("AddCallback: %v", err)
		}
		select {
		case <-ran:
			return true
		case <-time.After(testTimeout):
			return false
		}
	})
	var once sync.Once
	var result error
	return func() error {
		once.Do(func() {
			l.Stop()
			select {
			case result = <-done:
			case <-time.After(testTimeout):
				t.Fatal("Start did not return after Stop")
			}
		})
		return result
	}
}

// onLoop runs fn on the loop goroutine and waits for it.
func onLoop(t *testing.T, l *ioloop.IOLoop, fn func()) {
	t.Helper()
	ran := make(chan struct{})
	if err := l.AddCallback(func() { defer close(ran); fn() }); err != nil {
		t.Fatalf("AddCallback: %v", err)
	}
	select {
	case <-ran:
	case <-time.After(testTimeout):
		t.Fatal("callback did not run")
	}
}

// waitFor polls cond until it holds or testTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recv waits for a value on ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(p[0]); _ = unix.Close(p[1]) })
	return p[0], p[1]
}

func socketpair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fds[0]); _ = unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func eventfd(t *testing.T) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	return fd
}

func mustWrite(t *testing.T, fd int, p []byte) {
	t.Helper()
	if _, err := unix.Write(fd, p); err != nil {
		t.Fatalf("write fd %d: %v", fd, err)
	}
}

func fdIsOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries) - 1 // the directory's own fd
}

// checkNoLeaks records fds and goroutines now and checks at cleanup that
// both are back (goroutines get a moment to exit).
func checkNoLeaks(t *testing.T) {
	t.Helper()
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	t.Cleanup(func() {
		if n := openFDs(t); n != fds {
			t.Errorf("fd leak: %d open before, %d after", fds, n)
		}
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > goroutines {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", goroutines, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
