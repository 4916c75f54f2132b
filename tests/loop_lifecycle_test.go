package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
	"golang.org/x/sys/unix"
)

func TestStartWhileRunningReturnsErrRunning(t *testing.T) {
	checkNoLeaks(t)
	l, _ := newTestLoop(t)
	stop := startLoop(t, l)
	if err := l.Start(); !errors.Is(err, ioloop.ErrRunning) {
		t.Errorf("Start from another goroutine = %v, want ErrRunning", err)
	}
	var inside error
	onLoop(t, l, func() { inside = l.Start() })
	if !errors.Is(inside, ioloop.ErrRunning) {
		t.Errorf("Start from a callback = %v, want ErrRunning", inside)
	}
	if err := l.RunSync(context.Background(), func(done func(error)) { done(nil) }); !errors.Is(err, ioloop.ErrRunning) {
		t.Errorf("RunSync on a running loop = %v, want ErrRunning", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestStopFromHandlerAndRestart(t *testing.T) {
	checkNoLeaks(t)
	l, _ := newTestLoop(t)
	r, w := pipe(t)
	_ = l.AddHandler(r, ioloop.HandlerFunc(func(fd int, _ ioloop.Events) {
		buf := make([]byte, 8)
		_, _ = unix.Read(fd, buf)
		l.Stop()
	}), ioloop.Read)
	for round := range 3 {
		mustWrite(t, w, []byte("s"))
		done := make(chan error, 1)
		go func() { done <- l.Start() }()
		if err := recv(t, done, "Start to return after Stop in a handler"); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

func TestStopFromAnotherGoroutineWakesSleepingLoop(t *testing.T) {
	l, _ := newTestLoop(t)
	stop := startLoop(t, l) // nothing scheduled: the loop sleeps without timeout
	time.Sleep(10 * time.Millisecond)
	if err := stop(); err != nil { // fails the test if Start does not return
		t.Fatal(err)
	}
}

func TestStopBeforeStartMakesStartReturnAtOnce(t *testing.T) {
	l, _ := newTestLoop(t)
	ran := false
	_ = l.AddCallback(func() { ran = true })
	l.Stop()
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Fatal("a Stop before Start still let the loop run a callback")
	}
	// The flag is consumed: the next Start runs.
	_ = l.AddCallback(func() { l.Stop() })
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("the queued callback did not run on the next Start")
	}
}

func TestCloseWhileRunningStopsTheLoop(t *testing.T) {
	checkNoLeaks(t)
	l, err := ioloop.New()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Start() }()
	waitFor(t, "the loop to run", func() bool { return l.Stats().Iterations > 0 })
	if err := l.Close(false); err != nil {
		t.Fatalf("Close while running: %v", err)
	}
	if err := recv(t, done, "Start to return"); err != nil {
		t.Fatalf("Start = %v", err)
	}
	if err := l.Start(); !errors.Is(err, ioloop.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	if err := l.AddCallback(func() {}); !errors.Is(err, ioloop.ErrClosed) {
		t.Errorf("AddCallback after Close = %v, want ErrClosed", err)
	}
	if err := l.AddHandler(0, ioloop.HandlerFunc(func(int, ioloop.Events) {}), ioloop.Read); !errors.Is(err, ioloop.ErrClosed) {
		t.Errorf("AddHandler after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(false); !errors.Is(err, ioloop.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	fired := make(chan struct{})
	l.CallLater(0, func() { close(fired) })
	l.RemoveTimeout(nil)
	select {
	case <-fired:
		t.Error("a timer fired on a closed loop")
	case <-time.After(10 * time.Millisecond):
	}
}

func TestCloseFromInsideACallback(t *testing.T) {
	checkNoLeaks(t)
	l, err := ioloop.New()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := pipe(t)
	_ = l.AddHandler(r, ioloop.HandlerFunc(func(int, ioloop.Events) {}), ioloop.Read)
	var closeErr error
	_ = l.AddCallback(func() { closeErr = l.Close(true) })
	done := make(chan error, 1)
	go func() { done <- l.Start() }()
	if err := recv(t, done, "Start to return after Close from a callback"); err != nil {
		t.Fatal(err)
	}
	if closeErr != nil {
		t.Fatalf("Close from a callback: %v", closeErr)
	}
	if fdIsOpen(r) {
		t.Fatal("Close(true) from a callback left the registered fd open")
	}
}

func TestAddCallbackRacingClose(t *testing.T) {
	checkNoLeaks(t)
	for range 50 {
		l, err := ioloop.New()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- l.Start() }()
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if err := l.AddCallback(func() {}); err != nil {
						if !errors.Is(err, ioloop.ErrClosed) {
							t.Errorf("AddCallback = %v", err)
						}
						return
					}
					l.CallLater(time.Millisecond, func() {})
				}
			}()
		}
		time.Sleep(time.Millisecond)
		if err := l.Close(false); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if err := recv(t, done, "Start to return"); err != nil && !errors.Is(err, ioloop.ErrClosed) {
			t.Fatal(err)
		}
	}
}

func TestAddCallbackFromAnotherGoroutineWakesTheLoop(t *testing.T) {
	l, _ := newTestLoop(t)
	stop := startLoop(t, l)
	defer stop()
	time.Sleep(5 * time.Millisecond) // let it fall asleep, with no timeout
	ran := make(chan struct{})
	if err := l.AddCallback(func() { close(ran) }); err != nil {
		t.Fatal(err)
	}
	recv(t, ran, "the callback on a sleeping loop")
	if s := l.Stats(); s.Wakeups == 0 {
		t.Fatal("the loop was not woken through the eventfd")
	}
}

func TestManyCallbacksCoalesceWakeups(t *testing.T) {
	l, _ := newTestLoop(t)
	stop := startLoop(t, l)
	defer stop()
	const producers, each = 4, 2500
	var ran atomic.Int64
	storm := func() {
		var wg sync.WaitGroup
		for range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					_ = l.AddCallback(func() { ran.Add(1) })
				}
			}()
		}
		wg.Wait()
	}

	// While the loop is busy (here: blocked in a callback) nothing needs
	// waking: ten thousand callbacks cost no eventfd write at all.
	release := make(chan struct{})
	busy := make(chan struct{})
	_ = l.AddCallback(func() { close(busy); <-release })
	<-busy
	before := l.Stats().Wakeups
	storm()
	if n := l.Stats().Wakeups - before; n != 0 {
		t.Fatalf("%d eventfd writes for %d callbacks added while the loop was busy, want 0", n, producers*each)
	}
	close(release)
	waitFor(t, "all callbacks", func() bool { return ran.Load() == producers*each })

	// Against a loop that keeps falling asleep: a wakeup is only ever
	// written to a sleeping loop, and each sleep consumes at most one, so
	// writes can never outnumber iterations.
	storm()
	waitFor(t, "all callbacks", func() bool { return ran.Load() == 2*producers*each })
	if s := l.Stats(); s.Wakeups > s.Iterations {
		t.Fatalf("%d eventfd writes for %d iterations: wakeups were not coalesced", s.Wakeups, s.Iterations)
	}
}

func TestCallbacksRunInOrderAndReAddedOnesWaitForNextIteration(t *testing.T) {
	l, _ := newTestLoop(t)
	var order []int
	for i := range 5 {
		_ = l.AddCallback(func() { order = append(order, i) })
	}
	r, w := pipe(t)
	mustWrite(t, w, []byte("x"))
	ioSeen := false
	_ = l.AddHandler(r, ioloop.HandlerFunc(func(fd int, _ ioloop.Events) {
		ioSeen = true
		_ = l.RemoveHandler(fd)
	}), ioloop.Read)
	// A callback that re-adds itself forever must not starve I/O or timers.
	spins := 0
	var spin func()
	spin = func() {
		spins++
		_ = l.AddCallback(spin)
	}
	_ = l.AddCallback(spin)
	timerFired := false
	l.CallLater(time.Millisecond, func() { timerFired = true })
	_ = l.AddCallback(func() {
		var check func()
		check = func() {
			if ioSeen && timerFired {
				l.Stop()
				return
			}
			_ = l.AddCallback(check)
		}
		check()
	})
	done := make(chan error, 1)
	go func() { done <- l.Start() }()
	if err := recv(t, done, "I/O and a timer despite a self-re-adding callback"); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(order) != "[0 1 2 3 4]" {
		t.Fatalf("callbacks ran in order %v", order)
	}
	if spins < 2 {
		t.Fatalf("spinning callback ran %d times", spins)
	}
	// One spin per iteration: it was never run twice in one iteration.
	if it := l.Stats().Iterations; uint64(spins) > it {
		t.Fatalf("self-re-adding callback ran %d times in %d iterations", spins, it)
	}
}

func TestEverythingRunsOnOneLockedOSThread(t *testing.T) {
	l, _ := newTestLoop(t)
	var mu sync.Mutex
	tids := map[int]bool{}
	record := func() { mu.Lock(); tids[unix.Gettid()] = true; mu.Unlock() }
	r, w := pipe(t)
	_ = l.AddHandler(r, ioloop.HandlerFunc(func(fd int, _ ioloop.Events) {
		record()
		buf := make([]byte, 8)
		_, _ = unix.Read(fd, buf)
	}), ioloop.Read)
	stop := startLoop(t, l)
	defer stop()
	for range 20 {
		onLoop(t, l, func() { record(); time.Sleep(100 * time.Microsecond) })
		fired := make(chan struct{})
		l.CallLater(0, func() { record(); close(fired) })
		recv(t, fired, "timer")
		mustWrite(t, w, []byte("x"))
		onLoop(t, l, func() {})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tids) != 1 {
		t.Fatalf("handlers, callbacks and timers ran on %d OS threads, want 1", len(tids))
	}
}

func TestCurrentIsTheRunningLoop(t *testing.T) {
	l, _ := newTestLoop(t)
	stop := startLoop(t, l)
	defer stop()
	var inside *ioloop.IOLoop
	var inLoop bool
	onLoop(t, l, func() { inside, inLoop = ioloop.Current(), l.InLoop() })
	if inside != l || !inLoop {
		t.Fatalf("Current() inside a callback = %p (InLoop %v), want the running loop %p", inside, inLoop, l)
	}
	if ioloop.Current() != ioloop.Instance() || l.InLoop() {
		t.Fatal("Current() outside any loop is not Instance()")
	}
}

// Loops nest on one goroutine (Tornado tests this): a callback of A runs
// B.RunSync. Inside B, B is current; once B returns, A is current again, in
// that callback and in every later one.
func TestCurrentAfterANestedLoopReturns(t *testing.T) {
	a, _ := newTestLoop(t)
	b, _ := newTestLoop(t)
	stop := startLoop(t, a)
	defer stop()
	var inB, afterB, later *ioloop.IOLoop
	var aInLoopDuringB bool
	onLoop(t, a, func() {
		err := b.RunSync(context.Background(), func(done func(error)) {
			inB, aInLoopDuringB = ioloop.Current(), a.InLoop()
			done(nil)
		})
		if err != nil {
			t.Errorf("nested RunSync: %v", err)
		}
		afterB = ioloop.Current()
	})
	onLoop(t, a, func() { later = ioloop.Current() })
	if inB != b || afterB != a || later != a {
		t.Fatalf("Current(): inside B %p (want B %p), after B %p and later %p (want A %p)", inB, b, afterB, later, a)
	}
	if !aInLoopDuringB || b.InLoop() {
		t.Fatalf("A.InLoop() inside B = %v (want true: B runs inside A's callback), B.InLoop() after = %v",
			aInLoopDuringB, b.InLoop())
	}
}

func TestInstanceIsOneLoop(t *testing.T) {
	var wg sync.WaitGroup
	got := make([]*ioloop.IOLoop, 8)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i] = ioloop.Instance() }()
	}
	wg.Wait()
	for _, l := range got {
		if l == nil || l != got[0] {
			t.Fatal("Instance returned different loops")
		}
	}
}

func TestPanicsInRealLoopAreLoggedAndLoopGoesOn(t *testing.T) {
	l, logs := newTestLoop(t)
	r, w := pipe(t)
	calls := 0
	_ = l.AddHandler(r, ioloop.HandlerFunc(func(fd int, _ ioloop.Events) {
		calls++
		buf := make([]byte, 8)
		_, _ = unix.Read(fd, buf)
		if calls == 1 {
			panic("first read explodes")
		}
	}), ioloop.Read)
	stop := startLoop(t, l)
	defer stop()
	mustWrite(t, w, []byte("1"))
	waitFor(t, "the panic", func() bool { return l.Stats().Panics == 1 })
	mustWrite(t, w, []byte("2"))
	waitFor(t, "the second event", func() bool { return l.Stats().Events >= 2 })
	if out := logs.String(); !strings.Contains(out, "first read explodes") || !strings.Contains(out, "stack=") {
		t.Fatalf("panic log lacks message or stack: %s", out)
	}
}

func TestSlowCallbackThresholdLogs(t *testing.T) {
	l, logs := newTestLoop(t, ioloop.WithSlowCallbackThreshold(2*time.Millisecond))
	_ = l.AddCallback(func() { time.Sleep(10 * time.Millisecond) })
	_ = l.AddCallback(func() { l.Stop() })
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "slow callback") {
		t.Fatalf("no slow-callback log: %s", logs.String())
	}
}

func TestStatsCountWork(t *testing.T) {
	l, _ := newTestLoop(t, ioloop.WithPollTimeMetrics())
	r, w := pipe(t)
	_ = l.AddHandler(r, ioloop.HandlerFunc(func(fd int, _ ioloop.Events) {
		buf := make([]byte, 8)
		_, _ = unix.Read(fd, buf)
	}), ioloop.Read)
	stop := startLoop(t, l)
	mustWrite(t, w, []byte("x"))
	waitFor(t, "the event", func() bool { return l.Stats().Events == 1 })
	fired := make(chan struct{})
	l.CallLater(time.Millisecond, func() { close(fired) })
	recv(t, fired, "timer")
	time.Sleep(20 * time.Millisecond) // idle: counted as poll time
	_ = stop()
	s := l.Stats()
	if s.Handlers != 1 || s.Timers != 1 || s.Callbacks == 0 || s.Iterations < 3 {
		t.Fatalf("stats = %+v", s)
	}
	if s.PollTime < 15*time.Millisecond || s.PollTime > time.Minute {
		t.Fatalf("PollTime = %v after an idle 20ms", s.PollTime)
	}
	if s.WorkTime <= 0 || s.WorkTime > time.Minute {
		t.Fatalf("WorkTime = %v", s.WorkTime)
	}
}

func TestPollTimeIsOptIn(t *testing.T) {
	l, _ := newTestLoop(t)
	_ = l.AddCallback(func() { l.CallLater(5*time.Millisecond, l.Stop) })
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.PollTime != 0 || s.WorkTime != 0 {
		t.Fatalf("time metrics measured without WithPollTimeMetrics: %+v", s)
	}
}
