package tests

import (
	"context"
	"errors"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// Issue 9 §2: the loop's lifecycle promises, kept under concurrent use.

// RemoveTimeout, Timeout.Cancel and PeriodicCallback.Stop are no-ops on a
// closed loop, and the loop's lock is free afterwards.
func TestTimerCancelAfterCloseIsANoOp(t *testing.T) {
	l, _ := newTestLoop(t)
	tm := l.CallLater(time.Hour, func() {})
	tm2 := l.CallLater(time.Hour, func() {})
	pc := ioloop.NewPeriodicCallback(l, time.Hour, func() {})
	pc.Start()
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	l.RemoveTimeout(tm)
	tm2.Cancel()
	pc.Stop()
	done := make(chan error, 1)
	go func() { done <- l.AddCallback(func() {}) }()
	if err := recv(t, done, "AddCallback after Close"); !errors.Is(err, ioloop.ErrClosed) {
		t.Fatalf("AddCallback after Close = %v, want ErrClosed", err)
	}
	if n := l.Stats().PendingTimers; n != 0 {
		t.Fatalf("%d timers pending on a closed loop", n)
	}
}

// Close races timer removal from many goroutines: nothing panics or hangs.
func TestCloseRacingTimerRemoval(t *testing.T) {
	for range 50 {
		l, _ := newTestLoop(t)
		stop := startLoop(t, l)
		var timers []*ioloop.Timeout
		for range 64 {
			timers = append(timers, l.CallLater(time.Hour, func() {}))
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < len(timers); i += 4 {
					l.RemoveTimeout(timers[i])
					l.CallLater(time.Hour, func() {}).Cancel()
				}
			}()
		}
		if err := l.Close(false); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		_ = stop()
	}
}

// A RunSync that returns ErrRunning leaves nothing behind: cancelling its
// context never stops the run that someone else's Start owns.
func TestRunSyncErrRunningNeverStopsAnotherRun(t *testing.T) {
	l, _ := newTestLoop(t)
	started := make(chan error, 1)
	go func() { started <- l.Start() }()
	onLoop(t, l, func() {})
	for i := range 1000 {
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		err := l.RunSync(ctx, func(done func(error)) { done(nil) })
		if !errors.Is(err, ioloop.ErrRunning) && !errors.Is(err, context.Canceled) {
			t.Fatalf("try %d: RunSync on a running loop = %v, want ErrRunning (or Canceled)", i, err)
		}
		select {
		case err := <-started:
			t.Fatalf("try %d: Start returned %v: a failed RunSync stopped the run", i, err)
		default:
		}
	}
	time.Sleep(10 * time.Millisecond) // any stray watcher would have fired by now
	select {
	case err := <-started:
		t.Fatalf("Start returned %v: a failed RunSync stopped the run", err)
	default:
	}
	l.Stop()
	if err := recv(t, started, "Start to return"); err != nil {
		t.Fatal(err)
	}
}

// Six goroutines run RunSync on one idle loop with contexts cancelled
// concurrently: every call returns (never stuck in epoll_wait), with its
// own result.
func TestRunSyncWithConcurrentCancelAlwaysReturns(t *testing.T) {
	l, _ := newTestLoop(t)
	const goroutines, calls = 6, 300
	var wg sync.WaitGroup
	var ok, canceled, running atomic.Int32
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				ctx, cancel := context.WithCancel(context.Background())
				go cancel()
				err := l.RunSync(ctx, func(done func(error)) { done(nil) })
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, context.Canceled):
					canceled.Add(1)
				case errors.Is(err, ioloop.ErrRunning):
					running.Add(1)
				default:
					t.Errorf("RunSync = %v", err)
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(3 * testTimeout):
		t.Fatalf("a RunSync never returned (ok %d, canceled %d, running %d of %d)",
			ok.Load(), canceled.Load(), running.Load(), goroutines*calls)
	}
	if ok.Load() == 0 {
		t.Error("no RunSync completed its function")
	}
}

// A done called after RunSync returned stops nothing.
func TestLateRunSyncDoneStopsNothing(t *testing.T) {
	l, _ := newTestLoop(t)
	var late func(error)
	if err := l.RunSync(context.Background(), func(done func(error)) { late = done; done(nil) }); err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- l.Start() }()
	onLoop(t, l, func() {})
	late(errors.New("late"))
	onLoop(t, l, func() {}) // the loop still runs callbacks
	select {
	case err := <-started:
		t.Fatalf("Start returned %v after a late done", err)
	default:
	}
	l.Stop()
	recv(t, started, "Start to return")
}

// Connect calls back exactly once even when the loop closes after the
// connect was queued, or while the socket is still connecting.
func TestConnectCallsBackOnceWhenTheLoopCloses(t *testing.T) {
	checkNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	const rounds = 400
	var closedErrs, connected atomic.Int32
	for range rounds {
		l, _ := newTestLoop(t)
		stop := startLoop(t, l)
		calls := make(chan error, 2)
		ioloop.Connect(l, "tcp", ln.Addr().String(), testTimeout, func(s *ioloop.Stream, err error) {
			if s != nil {
				s.Close()
			}
			calls <- err
		})
		_ = l.Close(false)
		_ = stop()
		err := recv(t, calls, "the connect callback")
		switch {
		case err == nil:
			connected.Add(1)
		case errors.Is(err, ioloop.ErrClosed):
			closedErrs.Add(1)
		default:
			t.Fatalf("Connect on a closing loop: %v", err)
		}
		select {
		case err := <-calls:
			t.Fatalf("connect callback ran twice (second: %v)", err)
		case <-time.After(time.Millisecond):
		}
	}
	if closedErrs.Load() == 0 {
		t.Fatalf("no connect was cut short by Close in %d rounds (%d connected): the test did not exercise the race",
			rounds, connected.Load())
	}
}

// A connect still in progress (SYN unanswered: the listener's backlog is
// full) when the loop closes: its callback gets ErrClosed, once, and its
// socket is closed.
func TestConnectInProgressWhenTheLoopCloses(t *testing.T) {
	checkNoLeaks(t)
	addr := stalledListener(t)
	l, _ := newTestLoop(t)
	stop := startLoop(t, l)
	const n = 8 // the first one or two fill the backlog; the rest hang
	calls := make(chan error, 2*n)
	for range n {
		ioloop.Connect(l, "tcp", addr, 0, func(s *ioloop.Stream, err error) {
			if s != nil {
				s.Close()
			}
			calls <- err
		})
	}
	time.Sleep(50 * time.Millisecond) // let the connects reach SYN_SENT
	_ = l.Close(false)
	_ = stop()
	closed := 0
	for range n {
		if err := recv(t, calls, "a connect callback"); errors.Is(err, ioloop.ErrClosed) {
			closed++
		} else if err != nil {
			t.Fatalf("connect: %v", err)
		}
	}
	select {
	case err := <-calls:
		t.Fatalf("a connect callback ran twice (%v)", err)
	case <-time.After(10 * time.Millisecond):
	}
	if closed == 0 {
		t.Fatal("no connect was still in progress at Close")
	}
}

// After a Close called from inside the loop has returned, the handler
// methods fail with ErrClosed from every goroutine, and nothing registered
// then is closed by the release.
func TestHandlerMethodsFailAfterCloseFromInsideTheLoop(t *testing.T) {
	l, _ := newTestLoop(t)
	stop := startLoop(t, l)
	defer stop()
	r, _ := pipe(t)
	closed := make(chan struct{})
	if err := l.AddCallback(func() {
		if err := l.Close(false); err != nil {
			t.Errorf("Close from inside: %v", err)
		}
		close(closed)
		time.Sleep(20 * time.Millisecond) // the loop is still in this iteration
	}); err != nil {
		t.Fatal(err)
	}
	<-closed
	h := ioloop.HandlerFunc(func(int, ioloop.Events) {})
	if err := l.AddHandler(r, h, ioloop.Read); !errors.Is(err, ioloop.ErrClosed) {
		t.Fatalf("AddHandler after Close returned = %v, want ErrClosed", err)
	}
	if err := l.UpdateHandler(r, ioloop.Read); !errors.Is(err, ioloop.ErrClosed) {
		t.Fatalf("UpdateHandler after Close returned = %v, want ErrClosed", err)
	}
	if err := l.RemoveHandler(r); !errors.Is(err, ioloop.ErrClosed) {
		t.Fatalf("RemoveHandler after Close returned = %v, want ErrClosed", err)
	}
	_ = stop()
	if !fdIsOpen(r) {
		t.Fatal("the release closed an fd that was never registered")
	}
}

// Under slog's default handler (which forwards to the log package and
// escapes newlines in attributes), a recovered panic's stack is printed
// one frame per line, after the record that names the panic.
func TestPanicStackIsReadableUnderTheDefaultLogger(t *testing.T) {
	var out logBuffer
	prevOut, prevFlags := log.Writer(), log.Flags()
	log.SetOutput(&out)
	log.SetFlags(0)
	defer func() { log.SetOutput(prevOut); log.SetFlags(prevFlags) }()
	l, err := ioloop.New() // the default logger: slog.Default(), the log bridge
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(false)
	if err := l.RunSync(context.Background(), func(done func(error)) {
		_ = l.AddCallback(func() { panic("boom-42") })
		_ = l.AddCallback(func() { done(nil) })
	}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, "ERROR ioloop: panic in callback (recovered; the loop goes on)") ||
		!strings.Contains(got, "panic=boom-42") {
		t.Fatalf("no panic record in the log:\n%s", got)
	}
	if strings.Contains(got, `\n\t`) || !strings.Contains(got, "\n\t") || !strings.Contains(got, "goroutine ") {
		t.Fatalf("the stack is not printed one frame per line:\n%s", got)
	}
	if !strings.Contains(got, "loop_lifecycle_race_test.go") {
		t.Fatalf("the stack does not show the panicking callback:\n%s", got)
	}
}
