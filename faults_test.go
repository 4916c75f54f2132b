//go:build linux && cgo

package ioloop

// Fault injection at the poller seam. A gomock poller wraps a REAL epoll
// poller: every call goes to the kernel unless a test injects a fault for
// it, so "the loop keeps serving the fds it has" is checked on real pipes.
// Each test counts what it injected and logs it (go test -v), for
// RELIABILITY.md.

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang/mock/gomock"
	"golang.org/x/sys/unix"
)

// faultWait bounds every wait: a broken loop fails instead of hanging CI.
const faultWait = 10 * time.Second

// faultRig is a loop over a Mockpoller that delegates to a real poller,
// except where ctl, poll or wake (set before the loop starts) inject a
// fault: they return a non-nil error (or true, for poll) to replace the
// real call.
type faultRig struct {
	t    *testing.T
	l    *IOLoop
	real poller
	logs *syncBuffer

	ctl  func(op ctlOp, fd int, events Events) error
	poll func(timeoutMs int) bool // true: return "interrupted" (no events) without waiting
	wake func() error

	afterPoll func(timeoutMs int, woken, dispatched bool) // observes every real Poll
	polling   atomic.Int64                                // timeout of the real Poll in progress, or notPolling
	batches   atomic.Uint64                               // real Polls that dispatched a batch
	injected  atomic.Uint64
}

func newFaultRig(t *testing.T) *faultRig {
	t.Helper()
	r := &faultRig{t: t, logs: &syncBuffer{}}
	r.l = newLoop([]Option{WithLogger(slog.New(slog.NewTextHandler(r.logs, nil)))})
	real, err := newPoller(r.l)
	if err != nil {
		t.Fatal(err)
	}
	r.real = real
	r.polling.Store(notPolling)
	mock := NewMockpoller(gomock.NewController(t))
	mock.EXPECT().Control(gomock.Any(), gomock.Any(), gomock.Any(), gomock.Any()).DoAndReturn(
		func(op ctlOp, fd int, events Events, gen uint32) error {
			if r.ctl != nil {
				if err := r.ctl(op, fd, events); err != nil {
					r.injected.Add(1)
					return err
				}
			}
			return r.real.Control(op, fd, events, gen)
		}).AnyTimes()
	mock.EXPECT().Poll(gomock.Any()).DoAndReturn(func(ms int) (bool, error) {
		if r.poll != nil && r.poll(ms) {
			r.injected.Add(1)
			return false, nil // what the C core makes of EINTR
		}
		r.polling.Store(int64(ms))
		before := r.l.stats.events.Load() + r.l.stats.stale.Load()
		woken, err := r.real.Poll(ms)
		r.polling.Store(notPolling)
		dispatched := r.l.stats.events.Load()+r.l.stats.stale.Load() != before
		if dispatched {
			r.batches.Add(1)
		}
		if r.afterPoll != nil {
			r.afterPoll(ms, woken, dispatched)
		}
		return woken, err
	}).AnyTimes()
	mock.EXPECT().Wake().DoAndReturn(func() error {
		if r.wake != nil {
			if err := r.wake(); err != nil {
				r.injected.Add(1)
				return err
			}
		}
		return r.real.Wake()
	}).AnyTimes()
	mock.EXPECT().Close().DoAndReturn(func() error { return r.real.Close() }).AnyTimes()
	r.l.poller = mock
	t.Cleanup(func() {
		if err := r.l.Close(false); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// start runs the loop on its own goroutine; it is stopped when the test
// ends unless wait saw Start return first.
func (r *faultRig) start() *faultRun {
	r.t.Helper()
	run := &faultRun{done: make(chan error, 1)}
	go func() { run.done <- r.l.Start() }()
	r.onLoop(func() {})
	r.t.Cleanup(func() {
		if run.returned {
			return
		}
		r.l.Stop()
		if err := run.wait(r.t); err != nil {
			r.t.Errorf("Start: %v", err)
		}
	})
	return run
}

type faultRun struct {
	done     chan error
	returned bool
}

// wait waits for Start to return and gives its result.
func (run *faultRun) wait(t *testing.T) error {
	t.Helper()
	err := faultRecv(t, run.done, "Start to return")
	run.returned = true
	return err
}

// onLoop runs fn on the loop goroutine and waits for it.
func (r *faultRig) onLoop(fn func()) {
	r.t.Helper()
	ran := make(chan struct{})
	if err := r.l.AddCallback(func() { fn(); close(ran) }); err != nil {
		r.t.Fatalf("AddCallback: %v", err)
	}
	faultRecv(r.t, ran, "a callback to run on the loop")
}

const notPolling = -2

// sleeping waits until the loop is in (or committed to) a real Poll with
// no timeout: from then on only I/O or a wakeup can make it return.
func (r *faultRig) sleeping() {
	r.t.Helper()
	deadline := time.Now().Add(faultWait)
	for r.polling.Load() != -1 || !r.l.sleeping.Load() {
		if time.Now().After(deadline) {
			r.t.Fatal("the loop never went to sleep")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func faultRecv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(faultWait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// faultPipe is a pipe served by an echo-to-channel handler: each Read
// event drains the pipe and sends what it read.
type faultPipe struct {
	r, w int
	got  chan []byte
}

func newFaultPipe(t *testing.T) *faultPipe {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(p[0]); _ = unix.Close(p[1]) })
	return &faultPipe{r: p[0], w: p[1], got: make(chan []byte, 64)}
}

func (p *faultPipe) handler(t *testing.T) Handler {
	return HandlerFunc(func(fd int, ev Events) {
		if fd != p.r {
			t.Errorf("handler of fd %d called for fd %d", p.r, fd)
		}
		var buf [512]byte
		n, err := unix.Read(fd, buf[:])
		if err != nil || n <= 0 {
			t.Errorf("read(%d) after %v = %d, %v", fd, ev, n, err)
			return
		}
		p.got <- append([]byte(nil), buf[:n]...)
	})
}

// silent is a handler for a pipe whose registration failed: it must
// never be called.
func (p *faultPipe) silent(t *testing.T) Handler {
	return HandlerFunc(func(fd int, ev Events) {
		t.Errorf("fd %d's handler called (%v) although its registration failed", fd, ev)
	})
}

func (p *faultPipe) send(t *testing.T, msg string) {
	t.Helper()
	if _, err := unix.Write(p.w, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// expectEcho waits until the handler has read exactly msg.
func (p *faultPipe) expectEcho(t *testing.T, msg string) {
	t.Helper()
	var got []byte
	for len(got) < len(msg) {
		got = append(got, faultRecv(t, p.got, fmt.Sprintf("fd %d to be served", p.r))...)
	}
	if string(got) != msg {
		t.Fatalf("fd %d served %q, want %q", p.r, got, msg)
	}
}

// unread reads what is waiting in the pipe, bypassing the loop.
func (p *faultPipe) unread(t *testing.T) string {
	t.Helper()
	var buf [512]byte
	n, err := unix.Read(p.r, buf[:])
	if err == unix.EAGAIN {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// TestFaultCtlWatchLimit models max_user_watches: the rig admits at most
// `limit` watches and answers further EPOLL_CTL_ADDs with ENOSPC, as the
// kernel does. The fds that got in keep being served while the others
// fail with a clear error; freeing watches lets the failed ones in.
func TestFaultCtlWatchLimit(t *testing.T) {
	r := newFaultRig(t)
	const limit, total = 5, 9
	var mu sync.Mutex
	watches := 0
	r.ctl = func(op ctlOp, fd int, ev Events) error {
		mu.Lock()
		defer mu.Unlock()
		switch op {
		case ctlAdd:
			if watches >= limit {
				return syscall.ENOSPC
			}
			watches++ // the real ADD below succeeds for these pipes
		case ctlDel:
			watches--
		}
		return nil
	}
	r.start()

	pipes := make([]*faultPipe, total)
	var in, out []*faultPipe
	for i := range pipes {
		p := newFaultPipe(t)
		pipes[i] = p
		h := p.handler(t)
		if i >= limit {
			h = p.silent(t) // its registration fails: never to be called
		}
		err := r.l.AddHandler(p.r, h, Read)
		if i < limit {
			if err != nil {
				t.Fatalf("AddHandler #%d under the limit: %v", i, err)
			}
			in = append(in, p)
			continue
		}
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "epoll_ctl") ||
			!strings.Contains(err.Error(), fmt.Sprintf("AddHandler(fd %d)", p.r)) {
			t.Fatalf("AddHandler #%d over the limit = %v, want an epoll_ctl error for fd %d wrapping ENOSPC",
				i, err, p.r)
		}
		if err := r.l.UpdateHandler(p.r, Read); !errors.Is(err, ErrNotRegistered) {
			t.Fatalf("UpdateHandler after a failed AddHandler = %v, want ErrNotRegistered", err)
		}
		out = append(out, p)
	}
	if n := r.l.Stats().Handlers; n != limit {
		t.Fatalf("Stats().Handlers = %d, want %d", n, limit)
	}

	// Everyone writes; only the registered fds are served, every byte.
	for round := range 3 {
		for i, p := range pipes {
			p.send(t, fmt.Sprintf("round %d pipe %d;", round, i))
		}
		for i, p := range in {
			p.expectEcho(t, fmt.Sprintf("round %d pipe %d;", round, i))
		}
	}
	for j, p := range out {
		want := ""
		for round := range 3 {
			want += fmt.Sprintf("round %d pipe %d;", round, limit+j)
		}
		if got := p.unread(t); got != want {
			t.Fatalf("unregistered fd %d holds %q, want %q (untouched by the loop)", p.r, got, want)
		}
	}

	// UpdateHandler's re-add (MOD says ENOENT: dup2 replaced the file)
	// hits the limit too: a clear error, and the other fds go on.
	fresh := newFaultPipe(t)
	if err := unix.Dup3(fresh.r, in[0].r, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	watches-- // the kernel dropped in[0]'s watch with its last reference
	mu.Unlock()
	if err := r.l.AddHandler(out[0].r, out[0].handler(t), Read); err != nil {
		t.Fatalf("AddHandler with a free watch: %v", err) // takes the freed watch
	}
	err := r.l.UpdateHandler(in[0].r, Read|Write)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "UpdateHandler") {
		t.Fatalf("UpdateHandler re-add over the limit = %v, want ENOSPC from UpdateHandler", err)
	}
	for _, p := range in[1:] {
		p.send(t, "still served")
		p.expectEcho(t, "still served")
	}
	out[0].send(t, "late joiner")
	out[0].expectEcho(t, "late joiner")

	// Freeing watches lets the rest in.
	for _, p := range in[1:3] {
		if err := r.l.RemoveHandler(p.r); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range out[1:3] {
		if err := r.l.AddHandler(p.r, p.handler(t), Read); err != nil {
			t.Fatalf("AddHandler after RemoveHandler freed watches: %v", err)
		}
		p.send(t, "in at last")
		p.expectEcho(t, "in at last")
	}
	if n := r.injected.Load(); n != total-limit+1 {
		t.Fatalf("injected %d ENOSPC, want %d", n, total-limit+1)
	}
	t.Logf("injected %d ENOSPC (max_user_watches) faults", r.injected.Load())
}

// TestFaultCtlENOMEMIsReportedAndRetryable fails every other EPOLL_CTL_ADD
// with ENOMEM while the loop serves the fds it already has; callers that
// retry get every fd registered and served.
func TestFaultCtlENOMEMIsReportedAndRetryable(t *testing.T) {
	r := newFaultRig(t)
	var adds atomic.Int64
	r.ctl = func(op ctlOp, fd int, ev Events) error {
		if op == ctlAdd && adds.Add(1)%2 == 1 {
			return syscall.ENOMEM
		}
		return nil
	}
	r.start()
	const n = 24
	var pipes []*faultPipe
	failures := 0
	for i := range n {
		p := newFaultPipe(t)
		for {
			err := r.l.AddHandler(p.r, p.handler(t), Read)
			if err == nil {
				break
			}
			if !errors.Is(err, syscall.ENOMEM) || !strings.Contains(err.Error(), "epoll_ctl") {
				t.Fatalf("AddHandler = %v, want an epoll_ctl error wrapping ENOMEM", err)
			}
			failures++
			// Meanwhile the loop serves the fds it has.
			for j, q := range pipes {
				msg := fmt.Sprintf("%d/%d;", i, j)
				q.send(t, msg)
				q.expectEcho(t, msg)
			}
		}
		pipes = append(pipes, p)
	}
	for i, p := range pipes {
		p.send(t, fmt.Sprintf("final %d", i))
		p.expectEcho(t, fmt.Sprintf("final %d", i))
	}
	if failures != n || r.injected.Load() != n {
		t.Fatalf("saw %d ENOMEM failures, injected %d, want %d", failures, r.injected.Load(), n)
	}
	t.Logf("injected %d ENOMEM faults on EPOLL_CTL_ADD", r.injected.Load())
}

// TestFaultEINTRStormKeepsOrder interrupts the first 4000 polls (the C
// core turns EINTR into "no events", so the loop spins through them
// recomputing its timeout), then every other one, while timers with
// equal and different deadlines, callbacks from another goroutine and a
// real pipe are in flight: timers fire in (deadline, schedule) order and
// never early, callbacks run in the order added, every byte is served.
func TestFaultEINTRStormKeepsOrder(t *testing.T) {
	r := newFaultRig(t)
	const storm = 4000
	var polls atomic.Int64
	r.poll = func(int) bool {
		return polls.Add(1) <= storm || polls.Load()%2 == 0
	}
	p := newFaultPipe(t)
	if err := r.l.AddHandler(p.r, p.handler(t), Read); err != nil {
		t.Fatal(err)
	}

	// Group A: 40 timers scheduled before Start, eight deadlines shared by
	// five timers each (CallAt with one base: exactly equal deadlines).
	// Group B: 20 timers at one instant, scheduled from another goroutine
	// while the loop runs.
	const groupA, groupB = 40, 20
	type fired struct {
		id       int
		deadline time.Duration
		at       time.Duration // loop clock when it ran
	}
	var (
		mu       sync.Mutex
		handles  [groupA + groupB]*Timeout // under mu
		order    []fired                   // loop goroutine only
		allFired = make(chan struct{})
	)
	schedule := func(id int, when time.Time) {
		mu.Lock()
		defer mu.Unlock()
		handles[id] = r.l.CallAt(when, func() {
			mu.Lock()
			deadline := handles[id].deadline
			mu.Unlock()
			order = append(order, fired{id, deadline, r.l.now()})
			if len(order) == groupA+groupB {
				close(allFired)
			}
		})
	}
	base := r.l.Time()
	for i := range groupA {
		schedule(i, base.Add(time.Duration(i%8)*time.Millisecond))
	}
	r.start()
	var cbOrder []int // loop goroutine only
	cbDone := make(chan struct{})
	go func() {
		for i := range 200 {
			_ = r.l.AddCallback(func() {
				cbOrder = append(cbOrder, i)
				if i == 199 {
					close(cbDone)
				}
			})
		}
	}()
	go func() {
		at := r.l.Time().Add(5 * time.Millisecond)
		for i := groupA; i < groupA+groupB; i++ {
			schedule(i, at)
		}
	}()
	for i := range 20 {
		p.send(t, fmt.Sprintf("<%d>", i))
		p.expectEcho(t, fmt.Sprintf("<%d>", i))
	}
	faultRecv(t, allFired, "all timers to fire")
	faultRecv(t, cbDone, "all callbacks to run")
	r.onLoop(func() {
		var prevA, prevB *fired
		for i := range order {
			f := &order[i]
			if f.at < f.deadline {
				t.Errorf("timer %d fired at %v, before its deadline %v", f.id, f.at, f.deadline)
			}
			if f.id < groupA { // all pending together: (deadline, schedule order)
				if prevA != nil && (f.deadline < prevA.deadline || f.deadline == prevA.deadline && f.id < prevA.id) {
					t.Errorf("timer %d (deadline %v) fired after timer %d (deadline %v)",
						f.id, f.deadline, prevA.id, prevA.deadline)
				}
				prevA = f
				continue
			}
			if prevB != nil && f.id < prevB.id { // one deadline: schedule order
				t.Errorf("equal deadlines out of schedule order: %d after %d", f.id, prevB.id)
			}
			prevB = f
		}
		for i, id := range cbOrder {
			if id != i {
				t.Fatalf("callback %d ran in position %d", id, i)
			}
		}
	})
	if r.injected.Load() == 0 {
		t.Fatal("no interruption injected")
	}
	t.Logf("injected %d interrupted polls; %d timers and 200 callbacks kept their order",
		r.injected.Load(), groupA+groupB)
}

// TestFaultRealEINTRFromSignals interrupts the real epoll_wait with
// signals (SIGURG, which the Go runtime already handles, sent to the
// loop's thread with tgkill) until 200 waits have come back empty, then
// checks that the loop still serves fds, callbacks and timers.
func TestFaultRealEINTRFromSignals(t *testing.T) {
	r := newFaultRig(t)
	var interrupted atomic.Int64
	r.afterPoll = func(ms int, woken, dispatched bool) {
		// A wait without timeout that returns with no event and no wakeup
		// was interrupted by a signal.
		if ms == -1 && !woken && !dispatched {
			interrupted.Add(1)
		}
	}
	p := newFaultPipe(t)
	if err := r.l.AddHandler(p.r, p.handler(t), Read); err != nil {
		t.Fatal(err)
	}
	tids := make(chan int, 1)
	r.l.AddCallback(func() { tids <- syscall.Gettid() })
	r.start()
	tid := <-tids // the loop's locked OS thread
	const want = 200
	deadline := time.Now().Add(faultWait)
	sent := 0
	for interrupted.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d waits interrupted after %d signals", interrupted.Load(), want, sent)
		}
		// The idle loop spends nearly all its time in epoll_wait; a signal
		// that lands just outside it is simply followed by another.
		if err := unix.Tgkill(unix.Getpid(), tid, unix.SIGURG); err != nil {
			t.Fatal(err)
		}
		sent++
		time.Sleep(200 * time.Microsecond)
	}
	p.send(t, "after the storm")
	p.expectEcho(t, "after the storm")
	timer := make(chan struct{})
	r.l.CallLater(time.Millisecond, func() { close(timer) })
	faultRecv(t, timer, "a timer after the storm")
	r.onLoop(func() {})
	t.Logf("%d signals interrupted %d real epoll_waits (EINTR); the loop went on serving", sent, interrupted.Load())
}

// TestFaultWakeFailure makes the eventfd write fail: the failure is
// logged with the syscall and errno, the loop keeps serving its fds, and
// the work whose wakeup was lost runs as soon as the loop wakes for I/O;
// once writes succeed again, wakeups are prompt.
func TestFaultWakeFailure(t *testing.T) {
	r := newFaultRig(t)
	var failing atomic.Bool // false until the loop runs: start() needs one wakeup
	r.wake = func() error {
		if failing.Load() {
			return syscall.EIO
		}
		return nil
	}
	p := newFaultPipe(t)
	if err := r.l.AddHandler(p.r, p.handler(t), Read); err != nil {
		t.Fatal(err)
	}
	run := r.start()
	failing.Store(true)

	for round := range 3 {
		r.sleeping()
		ran := make(chan struct{})
		injected := r.injected.Load()
		if err := r.l.AddCallback(func() { close(ran) }); err != nil {
			t.Fatalf("AddCallback with a failing waker = %v (the callback is queued: want nil)", err)
		}
		if r.injected.Load() != injected+1 {
			t.Fatalf("round %d: AddCallback to a sleeping loop did not try to wake it", round)
		}
		select {
		case <-ran:
			t.Fatalf("round %d: the callback ran although the wakeup failed and no fd was ready", round)
		default:
		}
		// I/O wakes the loop; it serves the fd and then runs the callback.
		msg := fmt.Sprintf("io %d", round)
		p.send(t, msg)
		p.expectEcho(t, msg)
		faultRecv(t, ran, "the queued callback once I/O woke the loop")
	}

	// Stop with a failing waker: the loop sleeps on until I/O wakes it,
	// serves the fd, and returns from Start.
	r.sleeping()
	r.l.Stop()
	select {
	case <-run.done:
		t.Fatal("Start returned although the wakeup failed and no fd was ready")
	default:
	}
	p.send(t, "last")
	p.expectEcho(t, "last")
	if err := run.wait(t); err != nil {
		t.Fatal(err)
	}
	logs := r.logs.String()
	if n := strings.Count(logs, "cannot wake the loop"); n != 4 {
		t.Fatalf("wake failure logged %d times, want 4:\n%s", n, logs)
	}
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "write(eventfd)") ||
		!strings.Contains(logs, syscall.EIO.Error()) {
		t.Fatalf("the log does not name the level, syscall and errno:\n%s", logs)
	}

	// Healthy again: the loop restarts and wakeups are prompt, no I/O needed.
	failing.Store(false)
	r.start()
	r.sleeping()
	r.onLoop(func() {})
	t.Logf("injected %d eventfd write failures; fds kept being served", r.injected.Load())
}
