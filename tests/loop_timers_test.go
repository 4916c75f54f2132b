package tests

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

func TestTimersWithEqualDeadlinesRunInScheduleOrder(t *testing.T) {
	l, _ := newTestLoop(t)
	when := l.Time().Add(5 * time.Millisecond)
	var order []int
	for i := range 100 {
		l.CallAt(when, func() { order = append(order, i) })
	}
	l.CallAt(when.Add(time.Millisecond), func() { l.Stop() })
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("equal-deadline timers ran out of order: %v", order)
		}
	}
	if len(order) != 100 {
		t.Fatalf("%d of 100 timers ran", len(order))
	}
}

func TestDueTimersAreCollectedBeforeAnyRuns(t *testing.T) {
	l, _ := newTestLoop(t)
	when := l.Time().Add(2 * time.Millisecond)
	var order []string
	l.CallAt(when, func() {
		order = append(order, "A")
		// Already overdue, and earlier than C: still it must wait for the
		// next iteration, because C was collected first.
		l.CallAt(when.Add(-time.Second), func() { order = append(order, "B") })
	})
	l.CallAt(when, func() { order = append(order, "C") })
	l.CallAt(when.Add(5*time.Millisecond), func() { l.Stop() })
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ""); got != "ACB" {
		t.Fatalf("order %q, want ACB", got)
	}
}

func TestRemoveTimeoutFromTimerDueInSameIteration(t *testing.T) {
	l, _ := newTestLoop(t)
	when := l.Time().Add(2 * time.Millisecond)
	var victim *ioloop.Timeout
	ranVictim := false
	l.CallAt(when, func() { l.RemoveTimeout(victim) })
	victim = l.CallAt(when, func() { ranVictim = true })
	l.CallAt(when.Add(5*time.Millisecond), func() { l.Stop() })
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if ranVictim {
		t.Fatal("a timer removed by another timer of the same iteration still ran")
	}
}

func TestRemoveTimeoutIsANoOpOnFiredOrRemoved(t *testing.T) {
	l, _ := newTestLoop(t)
	var fired atomic.Int32
	t1 := l.CallLater(0, func() { fired.Add(1) })
	t2 := l.CallLater(time.Hour, func() { fired.Add(100) })
	_ = l.AddCallback(func() {})
	stop := startLoop(t, l)
	defer stop()
	waitFor(t, "the timer", func() bool { return fired.Load() == 1 })
	l.RemoveTimeout(t1) // fired already
	l.RemoveTimeout(t2)
	l.RemoveTimeout(t2) // removed already
	t2.Cancel()
	l.RemoveTimeout(nil)
	if s := l.Stats(); s.PendingTimers != 0 || s.Timers != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCallLaterFromAnotherGoroutineShortensTheSleep(t *testing.T) {
	l, _ := newTestLoop(t)
	l.CallLater(time.Hour, func() {}) // the loop sleeps up to an hour
	stop := startLoop(t, l)
	defer stop()
	time.Sleep(5 * time.Millisecond)
	fired := make(chan struct{})
	l.CallLater(time.Millisecond, func() { close(fired) })
	recv(t, fired, "an earlier timer added while the loop slept")
}

func TestTimerDeadlineAndCallAtInThePast(t *testing.T) {
	l, _ := newTestLoop(t)
	before := l.Time()
	tm := l.CallLater(50*time.Millisecond, func() {})
	if d := tm.Deadline().Sub(before); d < 50*time.Millisecond || d > time.Second {
		t.Fatalf("Deadline is %v after now, want about 50ms", d)
	}
	l.RemoveTimeout(tm)
	fired := make(chan struct{})
	l.CallAt(time.Now().Add(-time.Hour), func() { close(fired) })
	stop := startLoop(t, l)
	defer stop()
	recv(t, fired, "a timer scheduled in the past")
}

func TestManyTimersAddedAndRemovedLeaveNothing(t *testing.T) {
	l, _ := newTestLoop(t)
	const n = 200_000 // the benchmark does a million; this checks the bookkeeping
	timers := make([]*ioloop.Timeout, 0, n)
	for i := range n {
		timers = append(timers, l.CallLater(time.Hour+time.Duration(i), func() {}))
	}
	if s := l.Stats(); s.PendingTimers != n {
		t.Fatalf("PendingTimers = %d, want %d", s.PendingTimers, n)
	}
	for _, tm := range timers {
		l.RemoveTimeout(tm)
	}
	if s := l.Stats(); s.PendingTimers != 0 {
		t.Fatalf("PendingTimers = %d after removing all", s.PendingTimers)
	}
}

func TestPeriodicCallbackRunsAndStops(t *testing.T) {
	checkNoLeaks(t)
	l, _ := newTestLoop(t)
	var calls atomic.Int32
	pc := ioloop.NewPeriodicCallback(l, 2*time.Millisecond, func() { calls.Add(1) })
	if pc.IsRunning() {
		t.Fatal("running before Start")
	}
	pc.Start()
	pc.Start() // no-op
	stop := startLoop(t, l)
	defer stop()
	waitFor(t, "five periodic calls", func() bool { return calls.Load() >= 5 })
	pc.Stop()
	if pc.IsRunning() {
		t.Fatal("running after Stop")
	}
	onLoop(t, l, func() {}) // a call already in flight completes
	n := calls.Load()
	time.Sleep(20 * time.Millisecond)
	if calls.Load() != n {
		t.Fatal("PeriodicCallback fired after Stop")
	}
	if s := l.Stats(); s.PendingTimers != 0 {
		t.Fatalf("%d timers left behind by a stopped PeriodicCallback", s.PendingTimers)
	}
}

func TestPeriodicCallbackJitterStaysInRange(t *testing.T) {
	l, _ := newTestLoop(t)
	var times []time.Time
	pc := ioloop.NewPeriodicCallback(l, 4*time.Millisecond, nil)
	pc = ioloop.NewPeriodicCallback(l, 4*time.Millisecond, func() {
		times = append(times, l.Time())
		if len(times) == 10 {
			pc.Stop()
			l.Stop()
		}
	})
	pc.SetJitter(0.5)
	pc.Start()
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if len(times) != 10 {
		t.Fatalf("%d calls", len(times))
	}
}

func TestRunSyncReturnsTheResult(t *testing.T) {
	checkNoLeaks(t)
	l, _ := newTestLoop(t)
	want := errors.New("the answer")
	err := l.RunSync(context.Background(), func(done func(error)) {
		l.CallLater(time.Millisecond, func() { done(want) })
	})
	if !errors.Is(err, want) {
		t.Fatalf("RunSync = %v, want %v", err, want)
	}
	err = l.RunSync(context.Background(), func(done func(error)) {
		go done(nil) // from another goroutine
	})
	if err != nil {
		t.Fatalf("RunSync = %v", err)
	}
}

func TestRunSyncHonoursContextDeadline(t *testing.T) {
	checkNoLeaks(t)
	l, _ := newTestLoop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := l.RunSync(ctx, func(done func(error)) {}) // never done
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RunSync = %v, want DeadlineExceeded", err)
	}
	// The loop is usable again afterwards.
	if err := l.RunSync(context.Background(), func(done func(error)) { done(nil) }); err != nil {
		t.Fatalf("RunSync after a timeout: %v", err)
	}
}

func TestRunSyncStoppedFirstReturnsErrStopped(t *testing.T) {
	l, _ := newTestLoop(t)
	err := l.RunSync(context.Background(), func(done func(error)) { l.Stop() })
	if !errors.Is(err, ioloop.ErrStopped) {
		t.Fatalf("RunSync = %v, want ErrStopped", err)
	}
}

func TestRunSyncPanicBecomesError(t *testing.T) {
	l, logs := newTestLoop(t)
	err := l.RunSync(context.Background(), func(done func(error)) { panic("kaboom") })
	if err == nil || !strings.Contains(err.Error(), "kaboom") {
		t.Fatalf("RunSync = %v, want an error carrying the panic", err)
	}
	if !strings.Contains(logs.String(), "kaboom") {
		t.Fatal("the panic was not logged")
	}
}

func TestRunSyncOnClosedLoop(t *testing.T) {
	l, _ := ioloop.New()
	_ = l.Close(false)
	if err := l.RunSync(context.Background(), func(done func(error)) { done(nil) }); !errors.Is(err, ioloop.ErrClosed) {
		t.Fatalf("RunSync on a closed loop = %v, want ErrClosed", err)
	}
}

func TestConcurrentTimersFromManyGoroutines(t *testing.T) {
	l, _ := newTestLoop(t)
	stop := startLoop(t, l)
	defer stop()
	const goroutines, each = 4, 250
	var fired [goroutines * each]atomic.Int32 // calls per timer
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := g*each + i
				tm := l.CallLater(time.Duration(i%5)*time.Millisecond, func() { fired[id].Add(1) })
				if i%2 == 1 {
					l.RemoveTimeout(tm) // may or may not beat the timer
				}
			}
		}()
	}
	wg.Wait()
	// A sentinel scheduled after every other timer, with a later deadline:
	// timers run in (deadline, schedule) order, so when it runs, every
	// timer that was not removed has run. (Waiting for PendingTimers to
	// reach 0 was not enough: due timers leave the heap when they are
	// collected, before they run, and the test read the count too early
	// under load.)
	sentinel := make(chan struct{})
	l.CallLater(5*time.Millisecond, func() { close(sentinel) })
	select {
	case <-sentinel:
	case <-time.After(testTimeout):
		t.Fatal("the sentinel timer did not run")
	}
	total := 0
	for id := range fired {
		n := int(fired[id].Load())
		total += n
		switch i := id % each; {
		case i%2 == 0 && n != 1:
			t.Errorf("timer %d (never removed) ran %d times, want 1", id, n)
		case i%2 == 1 && n > 1:
			t.Errorf("timer %d (removed) ran %d times, want at most 1", id, n)
		}
	}
	if total < goroutines*each/2 {
		t.Fatalf("%d timer calls, want at least %d", total, goroutines*each/2)
	}
	if n := l.Stats().PendingTimers; n != 0 {
		t.Fatalf("PendingTimers = %d after the sentinel, want 0", n)
	}
}
