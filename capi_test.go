//go:build linux && cgo

package ioloop_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ioloop-go/ioloop"
	"github.com/ioloop-go/ioloop/internal/capitest"
	"golang.org/x/sys/unix"
)

// The C API (csrc/ioloop_api.h) seen from a C library on the loop
// (internal/capitest). Its C-level tests are in csrc/test/capi_tests.c.

type capiLoop struct {
	l    *ioloop.IOLoop
	api  unsafe.Pointer
	tid  int
	done chan error
}

func startCAPILoop(t *testing.T) *capiLoop {
	t.Helper()
	l, err := ioloop.New()
	if err != nil {
		t.Fatal(err)
	}
	api, err := l.CAPI()
	if err != nil {
		t.Fatal(err)
	}
	c := &capiLoop{l: l, api: api, done: make(chan error, 1)}
	go func() { c.done <- l.Start() }()
	c.on(t, func() { c.tid = unix.Gettid() })
	t.Cleanup(func() {
		_ = l.Close(false)
		<-c.done
	})
	return c
}

// on runs fn on the loop thread, where every C API call must be made.
func (c *capiLoop) on(t *testing.T, fn func()) {
	t.Helper()
	ran := make(chan struct{})
	if err := c.l.AddCallback(func() { defer close(ran); fn() }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("loop callback did not run")
	}
}

func (c *capiLoop) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		c.on(t, func() { ok = cond() })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func capiPipe(t *testing.T) (r, w int) {
	r, w, _ = capiPipeClosable(t)
	return r, w
}

// capiPipeClosable is capiPipe with a function that closes the write end
// early, once (the cleanup then leaves that number alone: it may belong to
// another file by then).
func capiPipeClosable(t *testing.T) (r, w int, closeW func()) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeW = func() { once.Do(func() { unix.Close(p[1]) }) }
	t.Cleanup(func() { unix.Close(p[0]); closeW() })
	return p[0], p[1], closeW
}

// startReader makes a C reader of fd (see capitest.Reader) and starts it
// on the loop; at the end of the test (before the loop closes: cleanups
// run last-in first-out) it is unwatched on the loop, then freed.
func (c *capiLoop) startReader(t *testing.T, fd int, rewatch bool) *capitest.Reader {
	t.Helper()
	rd := capitest.NewReader(c.api, fd, rewatch)
	t.Cleanup(func() {
		c.on(t, func() { _ = rd.Stop() })
		rd.Free()
	})
	var err error
	c.on(t, func() { err = rd.Start() })
	if err != nil {
		t.Fatalf("watch fd %d: %v", fd, err)
	}
	return rd
}

func TestCAPITableVersion(t *testing.T) {
	c := startCAPILoop(t)
	if v := capitest.Version(c.api); v != 1 {
		t.Fatalf("table version = %d, want 1", v)
	}
	if !strings.Contains(ioloop.CAPIHeader, "#define IOLOOP_API_VERSION 1") {
		t.Fatal("CAPIHeader is not the version 1 header")
	}
}

// A C watch's events are served in C on the loop's thread: a megabyte
// through a pipe reaches the C reader whole, and no Go handler runs.
func TestCAPIWatchIsServedInCOnTheLoopThread(t *testing.T) {
	c := startCAPILoop(t)
	r, w := capiPipe(t)
	rd := c.startReader(t, r, false)
	var err error
	before := c.l.Stats()
	const total = 1 << 20
	chunk := make([]byte, 8192)
	for sent := 0; sent < total; {
		n, err := unix.Write(w, chunk[:min(len(chunk), total-sent)])
		if err == unix.EAGAIN {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sent += n
	}
	c.waitFor(t, "the C reader to see every byte", func() bool { return rd.Bytes() == total })
	c.on(t, func() { err = rd.Stop() })
	if err != nil {
		t.Fatalf("unwatch: %v", err)
	}
	st := c.l.Stats()
	if st.Events != before.Events || st.CEvents == before.CEvents {
		t.Fatalf("Go handler calls %d -> %d (want unchanged), C events %d -> %d (want more)",
			before.Events, st.Events, before.CEvents, st.CEvents)
	}
	var tid int
	c.on(t, func() { tid = rd.TID() })
	if tid != c.tid {
		t.Fatalf("C callback ran on thread %d, the loop runs on %d", tid, c.tid)
	}
}

// Re-watching from inside the fd's own callback (a new generation each
// time) loses nothing.
func TestCAPIRewatchFromOwnCallback(t *testing.T) {
	c := startCAPILoop(t)
	r, w, closeW := capiPipeClosable(t)
	rd := c.startReader(t, r, true)
	for i := range 200 {
		if _, err := unix.Write(w, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	closeW()
	c.waitFor(t, "EOF at the C reader", rd.Done)
	if rd.Bytes() != 200 {
		t.Fatalf("C reader got %d bytes, want 200", rd.Bytes())
	}
}

// One fd number, one owner: AddHandler of an fd a C watch holds fails
// with ErrExists and EBUSY; once unwatched, Go may have it.
func TestCAPIAndGoNeverShareAnFD(t *testing.T) {
	c := startCAPILoop(t)
	r, w := capiPipe(t)
	rd := c.startReader(t, r, false)
	h := ioloop.HandlerFunc(func(int, ioloop.Events) {})
	err := c.l.AddHandler(r, h, ioloop.Read)
	if !errors.Is(err, ioloop.ErrExists) || !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("AddHandler of a C-watched fd = %v, want ErrExists and EBUSY", err)
	}
	if _, err := unix.Write(w, []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "the C watch to keep working", func() bool { return rd.Bytes() == 1 })
	c.on(t, func() {
		if err := rd.Stop(); err != nil {
			t.Error(err)
		}
	})
	got := make(chan ioloop.Events, 1)
	if err := c.l.AddHandler(r, ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
		var b [8]byte
		unix.Read(fd, b[:])
		select {
		case got <- ev:
		default:
		}
	}), ioloop.Read); err != nil {
		t.Fatalf("AddHandler after unwatch: %v", err)
	}
	unix.Write(w, []byte("y"))
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the Go handler never saw the fd")
	}
	if err := c.l.RemoveHandler(r); err != nil {
		t.Fatal(err)
	}
}

// A C timer that restarts itself from its callback runs on the loop
// thread, on time, on an otherwise idle loop that sleeps in between.
func TestCAPITimerFoldsIntoTheWait(t *testing.T) {
	c := startCAPILoop(t)
	var k *capitest.Ticker
	before := c.l.Stats()
	c.on(t, func() {
		k = capitest.NewTicker(c.api, 5, 20)
		if err := k.Start(); err != nil {
			t.Error(err)
		}
	})
	c.waitFor(t, "20 ticks", func() bool { return k.Runs() == 20 })
	var span uint64
	var tid int
	c.on(t, func() { span, tid = k.SpanMs(), k.TID(); k.Free() })
	if span < 19*5 {
		t.Fatalf("20 ticks 5 ms apart took %d ms from first to last, want >= 95", span)
	}
	if tid != c.tid {
		t.Fatalf("C timer ran on thread %d, the loop runs on %d", tid, c.tid)
	}
	st := c.l.Stats()
	if st.CTimers-before.CTimers != 20 {
		t.Fatalf("Stats.CTimers grew by %d, want 20", st.CTimers-before.CTimers)
	}
	// The loop slept between ticks: a handful of iterations per tick (our
	// own waitFor callbacks add some), never a spin.
	if it := st.Iterations - before.Iterations; it > 20*4+400 {
		t.Fatalf("%d loop iterations for 20 ticks: the loop spun", it)
	}
}

// OnClose hooks run before the C core is freed, so an integration can
// release its C state through the API there (ASan checks the order when
// the tests run with -asan); afterwards CAPI and OnClose report ErrClosed.
func TestCAPIOnCloseRunsWhileTheCoreIsValid(t *testing.T) {
	l, err := ioloop.New()
	if err != nil {
		t.Fatal(err)
	}
	api, err := l.CAPI()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := capiPipe(t)
	var k *capitest.Ticker
	var rd *capitest.Reader
	done := make(chan error, 1)
	go func() { done <- l.Start() }()
	started := make(chan struct{})
	l.AddCallback(func() {
		k = capitest.NewTicker(api, 3600*1000, 1)
		k.Start()
		rd = capitest.NewReader(api, r, false)
		rd.Start()
		close(started)
	})
	<-started
	var hookRan sync.WaitGroup
	hookRan.Add(1)
	if _, err := l.OnClose(func() {
		defer hookRan.Done()
		if err := rd.Stop(); err != nil {
			t.Errorf("unwatch in OnClose: %v", err)
		}
		rd.Free()
		k.Free()
	}); err != nil {
		t.Fatal(err)
	}
	cancelled := false
	cancel, _ := l.OnClose(func() { cancelled = true })
	cancel()
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	<-done
	hookRan.Wait()
	if cancelled {
		t.Fatal("a cancelled OnClose hook ran")
	}
	if _, err := l.CAPI(); !errors.Is(err, ioloop.ErrClosed) {
		t.Fatalf("CAPI after Close = %v, want ErrClosed", err)
	}
	if _, err := l.OnClose(func() {}); !errors.Is(err, ioloop.ErrClosed) {
		t.Fatalf("OnClose after Close = %v, want ErrClosed", err)
	}
}

// A cgo package in another module reaches the C API the documented way:
// the header written by cmd/ioloop-capi-header, the table from CAPI, no
// ioloop symbol at link time.
func TestCAPIFromAnotherModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module: not in -short")
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/thirdparty\n\ngo 1.26\n\nrequire github.com/ioloop-go/ioloop v0.0.0\n\n"+
		"replace github.com/ioloop-go/ioloop => "+root+"\n")
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	write("go.sum", string(sum))
	write("main.go", thirdPartyMain)
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("run", "github.com/ioloop-go/ioloop/cmd/ioloop-capi-header", "-o", "ioloop_api.h")
	if out := run("run", "."); !strings.Contains(out, "thirdparty: version 1, 3 ticks, 5 bytes") {
		t.Fatalf("third-party program: %s", out)
	}
}

const thirdPartyMain = `package main

/*
#include "ioloop_api.h"
#include <unistd.h>

static int ticks;
static long bytes;

static void tick(ioloop_timer *t, void *arg) {
	ioloop_api *api = arg;
	if (++ticks < 3)
		api->timer_start(t, 1);
}

static void on_read(int fd, uint32_t events, void *arg) {
	ioloop_api *api = arg;
	char buf[64];
	ssize_t n = read(fd, buf, sizeof buf);
	if (n > 0)
		bytes += n;
	else
		api->unwatch(api->core, fd);
	(void)events;
}

static int attach(void *p, int fd) {
	ioloop_api *api = p;
	if (api->version < 1 || api->size < sizeof(ioloop_api))
		return -1;
	ioloop_timer *t = api->timer_new(api->core, tick, api);
	if (t == NULL || api->timer_start(t, 1) < 0)
		return -2;
	return api->watch(api->core, fd, IOLOOP_READ, on_read, api);
}
static int ticks_seen(void) { return ticks; }
static long bytes_seen(void) { return bytes; }
*/
import "C"

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/ioloop-go/ioloop"
)

func main() {
	l, err := ioloop.New()
	if err != nil {
		panic(err)
	}
	api, err := l.CAPI()
	if err != nil {
		panic(err)
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		panic(err)
	}
	syscall.Write(p[1], []byte("hello"))
	syscall.Close(p[1])
	err = l.RunSync(context.Background(), func(done func(error)) {
		if rc := C.attach(api, C.int(p[0])); rc != 0 {
			done(fmt.Errorf("attach: %d", rc))
			return
		}
		var check func()
		check = func() {
			if C.ticks_seen() == 3 && C.bytes_seen() == 5 {
				done(nil)
				return
			}
			l.CallLater(1e6, check)
		}
		check()
	})
	if err != nil {
		fmt.Println("thirdparty:", err)
		os.Exit(1)
	}
	fmt.Printf("thirdparty: version 1, %d ticks, %d bytes\n", C.ticks_seen(), C.bytes_seen())
}
`
