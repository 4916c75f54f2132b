package ioloop

// White-box tests of the loop's logic at the poller seam (gomock). The
// real-fd behaviour is tested in tests/.

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang/mock/gomock"
)

// newMockLoop returns a loop over a mock poller, with a logger writing to
// the returned buffer.
func newMockLoop(t *testing.T) (*IOLoop, *Mockpoller, *syncBuffer) {
	t.Helper()
	ctrl := gomock.NewController(t)
	p := NewMockpoller(ctrl)
	logs := &syncBuffer{}
	l := newLoop([]Option{WithLogger(slog.New(slog.NewTextHandler(logs, nil)))})
	l.poller = p
	return l, p, logs
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDurationToTimeoutMsRoundsUpNeverToZero(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Nanosecond, 1},
		{300 * time.Microsecond, 1},
		{time.Millisecond, 1},
		{1500 * time.Microsecond, 2},
		{time.Hour, 3600000},
		{1 << 62, 1<<31 - 1},
	}
	for _, c := range cases {
		if got := durationToTimeoutMs(c.d); got != c.want {
			t.Errorf("durationToTimeoutMs(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestPollTimeoutFollowsTimersAndCallbacks(t *testing.T) {
	l, p, _ := newMockLoop(t)
	p.EXPECT().Wake().Return(nil).AnyTimes()
	var timeouts []int
	calls := 0
	p.EXPECT().Poll(gomock.Any()).DoAndReturn(func(ms int) (bool, error) {
		timeouts = append(timeouts, ms)
		calls++
		switch calls {
		case 1: // only a timer 50ms away
			// A callback that queues another: the second is pending when
			// the loop next decides how long to sleep.
			_ = l.AddCallback(func() { _ = l.AddCallback(func() {}) })
		case 2: // a callback is pending: must not block
		case 3:
			l.Stop()
		}
		return false, nil
	}).Times(3)
	l.CallLater(50*time.Millisecond, func() {})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if timeouts[0] < 40 || timeouts[0] > 50 {
		t.Errorf("first poll timeout = %dms, want about 50ms for the only timer", timeouts[0])
	}
	if timeouts[1] != 0 {
		t.Errorf("poll timeout with a pending callback = %d, want 0", timeouts[1])
	}
	if timeouts[2] < 1 {
		t.Errorf("poll timeout with a future timer = %d, want >= 1 (never spin)", timeouts[2])
	}
}

func TestPollTimeoutIsInfiniteWithNothingScheduled(t *testing.T) {
	l, p, _ := newMockLoop(t)
	p.EXPECT().Wake().Return(nil) // Stop from another goroutine during a blocking Poll must wake it
	p.EXPECT().Poll(-1).DoAndReturn(func(int) (bool, error) {
		stopped := make(chan struct{})
		go func() { l.Stop(); close(stopped) }()
		<-stopped
		return false, nil
	})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
}

func TestEINTRStormRecomputesTimeoutAndFiresTimer(t *testing.T) {
	l, p, _ := newMockLoop(t)
	fired := false
	p.EXPECT().Wake().Return(nil).AnyTimes()
	l.CallLater(20*time.Millisecond, func() { fired = true; l.Stop() })
	var timeouts []int
	// An interrupted wait returns no events and no error (the C core turns
	// EINTR into that); the loop must recompute, not reuse, its timeout.
	p.EXPECT().Poll(gomock.Any()).DoAndReturn(func(ms int) (bool, error) {
		timeouts = append(timeouts, ms)
		time.Sleep(3 * time.Millisecond)
		return false, nil
	}).MinTimes(2)
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if !fired {
		t.Fatal("timer did not fire through an EINTR storm")
	}
	for i := 1; i < len(timeouts); i++ {
		if timeouts[i] > timeouts[i-1] {
			t.Fatalf("timeouts went up after an interruption: %v", timeouts)
		}
	}
}

func TestPollErrorEndsStartWithWrappedErrno(t *testing.T) {
	l, p, logs := newMockLoop(t)
	p.EXPECT().Poll(gomock.Any()).Return(false, syscall.EBADF)
	p.EXPECT().Wake().Return(nil).AnyTimes() // Stop from inside Poll: the loop counts as asleep
	err := l.Start()
	if !errors.Is(err, syscall.EBADF) || !strings.Contains(err.Error(), "epoll_wait") {
		t.Fatalf("Start = %v, want an epoll_wait error wrapping EBADF", err)
	}
	if !strings.Contains(logs.String(), "poller failed") {
		t.Errorf("the failure was not logged: %q", logs.String())
	}
	// The loop can be started again.
	p.EXPECT().Poll(gomock.Any()).DoAndReturn(func(int) (bool, error) { l.Stop(); return false, nil })
	if err := l.Start(); err != nil {
		t.Fatalf("restart after a poll error: %v", err)
	}
}

func TestControlErrorsAreWrappedAndLeaveTheTableAlone(t *testing.T) {
	l, p, _ := newMockLoop(t)
	h := HandlerFunc(func(int, Events) {})

	p.EXPECT().Control(ctlAdd, 7, Read, uint32(1)).Return(syscall.ENOSPC) // max_user_watches
	err := l.AddHandler(7, h, Read)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "epoll_ctl") {
		t.Fatalf("AddHandler = %v, want epoll_ctl error wrapping ENOSPC", err)
	}
	if n := l.Stats().Handlers; n != 0 {
		t.Fatalf("a failed AddHandler left %d handlers", n)
	}

	p.EXPECT().Control(ctlAdd, 7, Read, uint32(1)).Return(nil)
	if err := l.AddHandler(7, h, Read); err != nil {
		t.Fatalf("AddHandler after a failure: %v", err)
	}

	p.EXPECT().Control(ctlAdd, 7, Read, uint32(2)).Return(syscall.EEXIST)
	if err := l.AddHandler(7, h, Read); !errors.Is(err, ErrExists) {
		t.Fatalf("second AddHandler = %v, want ErrExists", err)
	}

	p.EXPECT().Control(ctlMod, 7, Read|Write, uint32(1)).Return(syscall.ENOMEM)
	if err := l.UpdateHandler(7, Read|Write); !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("UpdateHandler = %v, want ENOMEM", err)
	}
	// The failed update did not change the recorded interest: asking again
	// for Read is still a no-op without a syscall (the mock would fail).
	if err := l.UpdateHandler(7, Read); err != nil {
		t.Fatalf("no-op UpdateHandler: %v", err)
	}

	p.EXPECT().Control(ctlAdd, 9, Read, uint32(1)).Return(syscall.EPERM)
	err = l.AddHandler(9, h, Read)
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "cannot be polled") {
		t.Fatalf("AddHandler(regular file) = %v, want EPERM saying it cannot be polled", err)
	}
}

func TestUpdateHandlerReAddsUnderNewGenerationOnENOENT(t *testing.T) {
	l, p, _ := newMockLoop(t)
	p.EXPECT().Control(ctlAdd, 5, Read, uint32(1)).Return(nil)
	if err := l.AddHandler(5, HandlerFunc(func(int, Events) {}), Read); err != nil {
		t.Fatal(err)
	}
	gomock.InOrder(
		p.EXPECT().Control(ctlMod, 5, Write, uint32(1)).Return(syscall.ENOENT),
		p.EXPECT().Control(ctlAdd, 5, Write, uint32(2)).Return(nil),
	)
	if err := l.UpdateHandler(5, Write); err != nil {
		t.Fatalf("UpdateHandler with MOD->ADD fallback: %v", err)
	}
}

func TestRemoveHandlerTreatsGoneFDsAsRemoved(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EBADF, syscall.ENOENT, syscall.EPERM} {
		l, p, _ := newMockLoop(t)
		p.EXPECT().Control(ctlAdd, 3, Read, gomock.Any()).Return(nil)
		_ = l.AddHandler(3, HandlerFunc(func(int, Events) {}), Read)
		p.EXPECT().Control(ctlDel, 3, None, uint32(0)).Return(errno)
		if err := l.RemoveHandler(3); err != nil {
			t.Errorf("RemoveHandler with DEL failing %v = %v, want nil (already gone)", errno, err)
		}
		if err := l.RemoveHandler(3); !errors.Is(err, ErrNotRegistered) {
			t.Errorf("second RemoveHandler = %v, want ErrNotRegistered", err)
		}
	}
	l, p, _ := newMockLoop(t)
	p.EXPECT().Control(ctlAdd, 3, Read, gomock.Any()).Return(nil)
	_ = l.AddHandler(3, HandlerFunc(func(int, Events) {}), Read)
	p.EXPECT().Control(ctlDel, 3, None, uint32(0)).Return(syscall.ENOMEM)
	if err := l.RemoveHandler(3); !errors.Is(err, syscall.ENOMEM) {
		t.Errorf("RemoveHandler with DEL failing ENOMEM = %v, want the error", err)
	}
}

func TestBadArgumentsNeverReachThePoller(t *testing.T) {
	l, _, _ := newMockLoop(t) // any poller call would fail the test
	h := HandlerFunc(func(int, Events) {})
	if err := l.AddHandler(-1, h, Read); !errors.Is(err, syscall.EBADF) {
		t.Errorf("AddHandler(-1) = %v, want EBADF", err)
	}
	if err := l.AddHandler(4, nil, Read); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("AddHandler(nil handler) = %v, want EINVAL", err)
	}
	if err := l.AddHandler(4, h, Events(0x2000)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("AddHandler(unknown bits) = %v, want EINVAL", err)
	}
	if err := l.UpdateHandler(4, Read); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("UpdateHandler(unknown fd) = %v, want ErrNotRegistered", err)
	}
	if err := l.RemoveHandler(4); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("RemoveHandler(unknown fd) = %v, want ErrNotRegistered", err)
	}
	if err := l.AddCallback(nil); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("AddCallback(nil) = %v, want EINVAL", err)
	}
}

// runBatch starts the loop, delivers one batch from inside Poll, and stops.
func runBatch(t *testing.T, l *IOLoop, p *Mockpoller, batch []event) {
	t.Helper()
	p.EXPECT().Poll(gomock.Any()).DoAndReturn(func(int) (bool, error) {
		l.dispatchBatch(batch)
		l.Stop()
		return false, nil
	})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
}

func TestStaleEventsAreDropped(t *testing.T) {
	l, p, _ := newMockLoop(t)
	ctrl := gomock.NewController(t)
	h := NewMockHandler(ctrl)
	p.EXPECT().Control(ctlAdd, 6, Read, uint32(1)).Return(nil)
	if err := l.AddHandler(6, h, Read); err != nil {
		t.Fatal(err)
	}
	h.EXPECT().HandleEvents(6, Read).Times(1)
	runBatch(t, l, p, []event{
		{fd: 6, gen: 0, events: uint32(Read)},  // the waker's tag, never a handler's
		{fd: 6, gen: 7, events: uint32(Read)},  // a previous owner of fd 6
		{fd: 6, gen: 1, events: uint32(Read)},  // the live registration
		{fd: 99, gen: 1, events: uint32(Read)}, // an fd beyond the table
	})
	if s := l.Stats(); s.StaleEvents != 3 || s.Events != 1 {
		t.Fatalf("stats = %+v, want 3 stale and 1 dispatched", s)
	}
}

func TestHandlerRemovedDuringDispatchIsNotCalled(t *testing.T) {
	l, p, _ := newMockLoop(t)
	ctrl := gomock.NewController(t)
	second := NewMockHandler(ctrl) // no calls expected
	p.EXPECT().Control(ctlAdd, gomock.Any(), Read, uint32(1)).Return(nil).Times(2)
	p.EXPECT().Control(ctlDel, 11, None, uint32(0)).Return(nil)
	first := HandlerFunc(func(int, Events) {
		if err := l.RemoveHandler(11); err != nil {
			t.Errorf("RemoveHandler from a handler: %v", err)
		}
	})
	_ = l.AddHandler(10, first, Read)
	_ = l.AddHandler(11, second, Read)
	runBatch(t, l, p, []event{{fd: 10, gen: 1, events: uint32(Read)}, {fd: 11, gen: 1, events: uint32(Read)}})
}

func TestReplacedHandlerDoesNotGetTheOldEvent(t *testing.T) {
	l, p, _ := newMockLoop(t)
	ctrl := gomock.NewController(t)
	newer := NewMockHandler(ctrl) // registered during the batch: must not see its events
	p.EXPECT().Control(ctlAdd, 21, Read, uint32(1)).Return(nil)
	p.EXPECT().Control(ctlDel, 21, None, uint32(0)).Return(nil)
	p.EXPECT().Control(ctlAdd, 21, Read, uint32(2)).Return(nil)
	p.EXPECT().Control(ctlAdd, 20, Read, uint32(1)).Return(nil)
	_ = l.AddHandler(20, HandlerFunc(func(int, Events) {
		_ = l.RemoveHandler(21)
		_ = l.AddHandler(21, newer, Read)
	}), Read)
	_ = l.AddHandler(21, HandlerFunc(func(int, Events) { t.Error("removed handler called") }), Read)
	runBatch(t, l, p, []event{{fd: 20, gen: 1, events: uint32(Read)}, {fd: 21, gen: 1, events: uint32(Read)}})
}

func TestHandlerGetsOnlyRequestedEventsPlusErrors(t *testing.T) {
	l, p, _ := newMockLoop(t)
	ctrl := gomock.NewController(t)
	h := NewMockHandler(ctrl)
	p.EXPECT().Control(ctlAdd, 4, Read, uint32(1)).Return(nil)
	_ = l.AddHandler(4, h, Read|Error)
	gomock.InOrder(
		h.EXPECT().HandleEvents(4, Read),
		h.EXPECT().HandleEvents(4, Read|Error),
		h.EXPECT().HandleEvents(4, Events(0x10)),
	)
	runBatch(t, l, p, []event{
		{fd: 4, gen: 1, events: uint32(Read | Write)},         // Write was not asked for
		{fd: 4, gen: 1, events: uint32(Read | Write | Error)}, // errors always pass
		{fd: 4, gen: 1, events: uint32(Write)},                // nothing left: no call
		{fd: 4, gen: 1, events: 0x10},                         // HUP alone
	})
}

func TestPanicsAreRecoveredAndLogged(t *testing.T) {
	l, p, logs := newMockLoop(t)
	p.EXPECT().Control(ctlAdd, 4, Read, uint32(1)).Return(nil)
	_ = l.AddHandler(4, HandlerFunc(func(int, Events) { panic("handler boom") }), Read)
	ran := false
	_ = l.AddCallback(func() { panic("callback boom") })
	_ = l.AddCallback(func() { ran = true })
	l.CallLater(0, func() { panic("timer boom") })
	runBatch(t, l, p, []event{{fd: 4, gen: 1, events: uint32(Read)}})
	if !ran {
		t.Error("a callback after a panicking one did not run")
	}
	out := logs.String()
	for _, want := range []string{"handler boom", "callback boom", "timer boom", "goroutine", "loop_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := l.Stats().Panics; n != 3 {
		t.Errorf("Panics = %d, want 3", n)
	}
}

func TestSlowCallbacksAreLoggedOnlyWhenEnabled(t *testing.T) {
	l, p, logs := newMockLoop(t)
	l.slowThreshold = time.Millisecond
	_ = l.AddCallback(func() { time.Sleep(5 * time.Millisecond) })
	runBatch(t, l, p, nil)
	if !strings.Contains(logs.String(), "slow callback") {
		t.Fatalf("slow callback not logged: %q", logs.String())
	}

	l2, p2, logs2 := newMockLoop(t)
	_ = l2.AddCallback(func() { time.Sleep(5 * time.Millisecond) })
	runBatch(t, l2, p2, nil)
	if strings.Contains(logs2.String(), "slow") {
		t.Fatalf("slow callback logged with the threshold off: %q", logs2.String())
	}
}

func TestWakeFailureIsLoggedAndRetried(t *testing.T) {
	l, p, logs := newMockLoop(t)
	started := make(chan struct{})
	p.EXPECT().Poll(gomock.Any()).DoAndReturn(func(int) (bool, error) {
		close(started)
		time.Sleep(20 * time.Millisecond) // asleep while the callbacks arrive
		return false, nil
	})
	p.EXPECT().Poll(gomock.Any()).DoAndReturn(func(int) (bool, error) { l.Stop(); return true, nil }).AnyTimes()
	gomock.InOrder(
		p.EXPECT().Wake().Return(syscall.EAGAIN),
		p.EXPECT().Wake().Return(nil),
	)
	done := make(chan error)
	go func() { done <- l.Start() }()
	<-started
	_ = l.AddCallback(func() {}) // Wake fails: logged, and the next producer tries again
	_ = l.AddCallback(func() {})
	_ = l.AddCallback(func() {}) // coalesced: no third Wake
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "cannot wake") {
		t.Errorf("wake failure not logged: %q", logs.String())
	}
}

func TestEventsString(t *testing.T) {
	cases := map[Events]string{
		None:                   "None",
		Read:                   "Read",
		Read | Write:           "Read|Write",
		Read | Error:           "Read|Error",
		Events(0x8):            "Error(ERR)",
		Events(0x10):           "Error(HUP)",
		Write | Events(0x2000): "Write|0x2000",
	}
	for e, want := range cases {
		if got := e.String(); got != want {
			t.Errorf("Events(%#x).String() = %q, want %q", uint32(e), got, want)
		}
	}
}

func TestNextOnGridSkipsMissedCycles(t *testing.T) {
	ms := time.Millisecond
	cases := []struct{ next, now, want time.Duration }{
		{100 * ms, 50 * ms, 110 * ms},  // early: one period on
		{100 * ms, 100 * ms, 110 * ms}, // exactly on time
		{100 * ms, 135 * ms, 140 * ms}, // overran 3.5 cycles: skip to the grid
		{100 * ms, 140 * ms, 150 * ms},
	}
	for _, c := range cases {
		if got := nextOnGrid(c.next, c.now, 10*ms); got != c.want {
			t.Errorf("nextOnGrid(%v, %v, 10ms) = %v, want %v", c.next, c.now, got, c.want)
		}
	}
}

func TestTimerHeapOrderAndRemoval(t *testing.T) {
	var h timerHeap
	var all []*Timeout
	for i := range 1000 {
		tm := &Timeout{deadline: time.Duration((i * 7919) % 100), seq: uint64(i)}
		h.push(tm)
		all = append(all, tm)
	}
	for i := 0; i < len(all); i += 3 {
		h.remove(all[i].index)
	}
	var prev *Timeout
	n := 0
	for len(h) > 0 {
		tm := h.pop()
		if tm.index != -1 {
			t.Fatal("popped timer keeps an index")
		}
		if prev != nil && (tm.deadline < prev.deadline || (tm.deadline == prev.deadline && tm.seq < prev.seq)) {
			t.Fatalf("heap order broken: %v/%d after %v/%d", tm.deadline, tm.seq, prev.deadline, prev.seq)
		}
		prev = tm
		n++
	}
	if n != 1000-334 {
		t.Fatalf("popped %d timers, want %d", n, 1000-334)
	}
	if cap(h) > 2048 {
		t.Errorf("empty heap keeps capacity %d", cap(h))
	}
}
