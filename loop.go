package ioloop

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ioloop-go/ioloop/internal/goid"
)

// IOLoop is a level-triggered I/O event loop in the manner of Tornado's
// IOLoop: file descriptor handlers, callbacks and timers, all run one at a
// time on the goroutine that called Start, which is locked to its OS thread
// for the duration (C libraries with thread affinity rely on that).
//
// Every method is safe to call from any goroutine. Called from another
// goroutine while the loop sleeps, AddCallback, CallLater, Stop and the
// handler methods take effect at once (the loop is woken when needed).
type IOLoop struct {
	poller        poller       // set by New; released by release() once the loop has stopped
	logger        *slog.Logger // immutable after New
	slowThreshold time.Duration
	pollTime      bool      // measure time in epoll_wait; immutable
	keepProcs     bool      // do not raise GOMAXPROCS in Start; immutable
	epoch         time.Time // monotonic origin of timer deadlines; immutable
	initErr       error     // why a loop from Instance never opened; immutable

	// regMu serializes changes to the handler table and orders epoll_ctl
	// calls with them, so the table and the kernel's interest list never
	// disagree for long. The loop reads the table without it (see
	// dispatchBatch).
	regMu       sync.Mutex
	table       handlerTable  // changed under regMu; read by the loop without it
	regClosed   bool          // under regMu: the loop is closed, no more registrations
	dispatching atomic.Uint64 // eventTag of the registration the loop is serving, 0 between events

	// mu guards the lifecycle state, the callback queue and the timer heap.
	mu         sync.Mutex
	callbacks  []func()      // under mu: run in the next iteration
	queued     atomic.Int32  // len(callbacks), written under mu, read by the loop without it
	timers     timerHeap     // under mu
	timerCount atomic.Int32  // len(timers), written under mu, read by the loop without it
	timerSeq   uint64        // under mu: ties between equal deadlines run FIFO
	running    bool          // under mu: Start is between its checks and its return
	runID      uint64        // under mu: counts runs, so a stop can name the run it is for
	closed     bool          // under mu: Close was called (or New failed)
	closeAll   bool          // under mu: Close(true): close registered fds on release
	done       chan struct{} // under mu: closed when the current Start returns
	startedAt  time.Time     // under mu: when the current Start began running
	closeRes   error         // under mu: result of release, handed to a waiting Close
	// under mu: run once at release (see onRelease), keyed by hookSeq
	releaseHooks map[uint64]func()
	hookSeq      uint64

	// Loop goroutine only: buffers reused across iterations so a steady
	// loop does not allocate, and the clock cached for one batch.
	spare      []func()
	due        []*Timeout
	batchTime  time.Time // see batchNow
	batchTimed bool      // batchTime was read in this batch or iteration

	// Wakeup protocol (runtime netpollBreak, libuv uv_async_send): the loop
	// sets sleeping before it looks for work and blocks; a producer adds its
	// work first and then writes the eventfd only if the loop sleeps and no
	// write is already pending. Both sides use sequentially consistent
	// atomics, so either the loop sees the work or the producer sees the
	// sleeper: a thousand AddCallbacks cost one write.
	sleeping    atomic.Bool
	wakePending atomic.Bool
	stopping    atomic.Bool    // Stop was called; cleared when Start returns
	owner       atomic.Uintptr // goid.Current() of the goroutine running Start, 0 when not running

	stats loopStats
}

// New creates a loop with its own epoll instance. On a platform without
// the epoll core it returns an error wrapping ErrUnsupported.
func New(opts ...Option) (*IOLoop, error) {
	l := newLoop(opts)
	p, err := newPoller(l)
	if err != nil {
		return nil, fmt.Errorf("ioloop: New: %w", err)
	}
	l.poller = p
	return l, nil
}

func newLoop(opts []Option) *IOLoop {
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return &IOLoop{
		logger:        o.logger,
		slowThreshold: o.slowThreshold,
		pollTime:      o.pollTime,
		keepProcs:     o.keepProcs,
		epoch:         time.Now(),
	}
}

var instance struct {
	once sync.Once
	loop *IOLoop
}

// Instance returns the process-wide loop, creating it on first use. It is
// safe to call from any goroutine. Where no loop can be created (see New),
// Instance returns a closed loop whose methods report the reason, wrapped
// in ErrClosed and ErrUnsupported, rather than panicking.
func Instance() *IOLoop {
	instance.once.Do(func() {
		l := newLoop(nil)
		p, err := newPoller(l)
		if err != nil {
			l.closed, l.initErr = true, err
			l.regClosed = true
		} else {
			l.poller = p
		}
		instance.loop = l
	})
	return instance.loop
}

// runningLoops maps each goroutine running a loop to the innermost loop it
// runs, for Current. Loops nest: a callback of loop A may run B.RunSync on
// the same goroutine, and when B returns, A is current again. Few loops run
// at once, and Current is off the hot path.
var runningLoops struct {
	sync.Mutex
	count   atomic.Int32
	byOwner map[uintptr]*IOLoop
}

// Current returns the loop whose handler, callback or timer is running on
// the calling goroutine (the innermost one when loops nest), or Instance()
// when there is none.
func Current() *IOLoop {
	if runningLoops.count.Load() > 0 {
		g := goid.Current()
		runningLoops.Lock()
		l := runningLoops.byOwner[g]
		runningLoops.Unlock()
		if l != nil {
			return l
		}
	}
	return Instance()
}

// enterRunning records that the calling goroutine now runs l, and returns
// the loop it ran before (nil if none), for leaveRunning.
func enterRunning(l *IOLoop, g uintptr) (outer *IOLoop, loops int) {
	runningLoops.Lock()
	defer runningLoops.Unlock()
	if runningLoops.byOwner == nil {
		runningLoops.byOwner = make(map[uintptr]*IOLoop)
	}
	outer = runningLoops.byOwner[g]
	runningLoops.byOwner[g] = l
	return outer, int(runningLoops.count.Add(1))
}

// leaveRunning undoes enterRunning: the outer loop, if any, is current again.
func leaveRunning(g uintptr, outer *IOLoop) {
	runningLoops.Lock()
	defer runningLoops.Unlock()
	if outer != nil {
		runningLoops.byOwner[g] = outer
	} else {
		delete(runningLoops.byOwner, g)
	}
	runningLoops.count.Add(-1)
}

// InLoop reports whether the caller runs on l's loop goroutine (inside one
// of its handlers, callbacks or timers). It costs a few nanoseconds.
func (l *IOLoop) InLoop() bool {
	owner := l.owner.Load()
	return owner != 0 && owner == goid.Current()
}

// Logger returns the logger the loop reports to (see WithLogger).
func (l *IOLoop) Logger() *slog.Logger { return l.logger }

// Time returns the loop's clock: time.Now, whose monotonic reading is what
// CallAt and the timers compare, so wall-clock jumps do not move timers.
func (l *IOLoop) Time() time.Time { return time.Now() }

// now is the loop clock as an offset from epoch (monotonic).
func (l *IOLoop) now() time.Duration { return time.Since(l.epoch) }

// batchNow is the clock read at most once per batch of events (and once
// per round of callbacks and timers), for code on the loop goroutine that
// needs "about now" on every event, such as a stream arming its read
// deadline: a clock read costs about 190 ns on the VMs we measure on,
// which is more than the loop's own work per event. It lags the real time
// by at most the time the batch has run so far. Loop goroutine only.
func (l *IOLoop) batchNow() time.Time {
	if !l.batchTimed {
		l.batchTime, l.batchTimed = time.Now(), true
	}
	return l.batchTime
}

// errClosed returns ErrClosed, wrapped with the reason when the loop never
// opened (Instance on an unsupported platform).
func (l *IOLoop) errClosed() error {
	if l.initErr != nil {
		return fmt.Errorf("%w: %w", ErrClosed, l.initErr)
	}
	return ErrClosed
}

// Start runs the loop on the calling goroutine, locked to its OS thread,
// until Stop is called. It returns ErrRunning if the loop already runs
// (including when called from one of its own callbacks), ErrClosed after
// Close, and nil after Stop. As in Tornado, a Stop that arrives while the
// loop is not running makes the next Start return at once. A loop can be
// started again after it stops. An unrecoverable epoll_wait error ends the
// loop and is returned.
func (l *IOLoop) Start() error {
	return l.start("Start", nil)
}

// start is Start with an optional hook that runs under mu once the loop is
// committed to running, with the run's id (RunSync queues its function and
// arms its context there, so neither can ever touch a run of the loop
// that some other Start owns).
func (l *IOLoop) start(op string, onStart func(run uint64)) error {
	if started, err := l.beginRun(onStart); !started {
		if err != nil {
			err = fmt.Errorf("ioloop: %s: %w", op, err)
		}
		return err
	}

	runtime.LockOSThread()
	g := goid.Current()
	l.owner.Store(g)
	outer, loops := enterRunning(l, g)
	if !l.keepProcs {
		l.reserveProcs(loops)
	}

	err := l.run()

	leaveRunning(g, outer)
	l.owner.Store(0)
	runtime.UnlockOSThread()

	release, done := l.endRun()
	if release {
		res := l.release()
		l.mu.Lock()
		l.closeRes = res
		l.mu.Unlock()
	}
	close(done)
	return err
}

// beginRun commits the loop to running, under mu. It returns false and no
// error when a Stop that came before Start ends this run before it begins
// (Tornado's rule).
func (l *IOLoop) beginRun(onStart func(run uint64)) (started bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return false, l.errClosed()
	case l.running:
		return false, ErrRunning
	case l.stopping.Swap(false):
		return false, nil
	}
	l.running = true
	l.runID++
	l.startedAt = time.Now()
	l.done = make(chan struct{})
	if onStart != nil {
		onStart(l.runID)
	}
	return true, nil
}

// endRun marks the run over, under mu, and says whether Close is waiting
// for the release.
func (l *IOLoop) endRun() (release bool, done chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats.runNanos.Add(uint64(time.Since(l.startedAt)))
	l.running = false
	l.stopping.Store(false)
	return l.closed, l.done
}

// stopRun stops the loop if it is still in run id, and does nothing once
// that run has ended: a late stop meant for one run never ends another.
func (l *IOLoop) stopRun(id uint64) {
	l.mu.Lock()
	mine := l.running && l.runID == id
	if mine {
		l.stopping.Store(true)
	}
	l.mu.Unlock()
	if mine {
		l.wakeup()
	}
}

// reserveProcs raises GOMAXPROCS to loops+1 when it is lower; see Start.
func (l *IOLoop) reserveProcs(loops int) {
	procsMu.Lock()
	defer procsMu.Unlock()
	if n := runtime.GOMAXPROCS(0); n <= loops {
		runtime.GOMAXPROCS(loops + 1)
		l.logger.Info("ioloop: raised GOMAXPROCS so that a P stays free while loops wait in epoll_wait",
			"from", n, "to", loops+1, "running_loops", loops)
	}
}

// procsMu serializes reserveProcs across loops starting at once.
var procsMu sync.Mutex

// run is the loop proper, after Tornado 4.5's PollIOLoop.start: run the
// callbacks queued before this iteration, then every timer that is due,
// then wait for I/O and dispatch it.
func (l *IOLoop) run() error {
	for {
		bump(&l.stats.iterations, 1)
		l.batchTimed = false
		l.runCallbacks()
		l.runDueTimers()
		if l.stopping.Load() {
			return nil
		}

		timeoutMs := l.pollTimeout()
		var began time.Time
		if l.pollTime {
			began = time.Now()
		}
		woken, err := l.poller.Poll(timeoutMs)
		if l.sleeping.Load() { // dispatchBatch clears it when a batch came
			l.sleeping.Store(false)
		}
		if l.pollTime {
			bump(&l.stats.pollNanos, uint64(time.Since(began)))
		}
		if woken {
			l.wakePending.Store(false)
		}
		if err != nil {
			err = fmt.Errorf("ioloop: %w", os.NewSyscallError("epoll_wait", err))
			l.logger.Error("ioloop: the poller failed; the loop stops", "err", err)
			return err
		}
		if l.stopping.Load() {
			return nil
		}
	}
}

// pollTimeout decides how long the next Poll may block, in milliseconds,
// and marks the loop as sleeping when it may block at all. sleeping is set
// before the queues are inspected: that order is what makes the wakeup
// protocol race-free (see IOLoop.sleeping).
func (l *IOLoop) pollTimeout() int {
	if l.queued.Load() > 0 || l.stopping.Load() {
		return 0 // work is waiting: no sleep, so nobody needs to wake us
	}
	l.sleeping.Store(true)
	if l.queued.Load() > 0 || l.stopping.Load() {
		l.sleeping.Store(false)
		return 0
	}
	timeout := -1
	if l.timerCount.Load() > 0 {
		l.mu.Lock()
		if len(l.timers) > 0 {
			timeout = durationToTimeoutMs(l.timers[0].deadline - l.now())
		}
		l.mu.Unlock()
	}
	if timeout == 0 {
		l.sleeping.Store(false)
	}
	return timeout
}

// durationToTimeoutMs converts a wait into epoll_wait's milliseconds. A
// positive wait under 1 ms rounds up to 1 ms, never down to 0: rounding
// down would make the loop spin until the timer is due.
func durationToTimeoutMs(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(ms)
}

// wakeup makes a sleeping loop return from Poll. It is cheap when the loop
// is awake (one atomic load) and coalesces concurrent callers into one
// eventfd write.
func (l *IOLoop) wakeup() {
	if !l.sleeping.Load() || l.InLoop() || !l.wakePending.CompareAndSwap(false, true) {
		// Awake, or called on the loop goroutine itself (by a C callback's
		// Go code while the core dispatches, say): the loop looks at its
		// queues before it blocks again.
		return
	}
	l.stats.wakeups.Add(1)
	if err := l.poller.Wake(); err != nil {
		l.wakePending.Store(false)
		l.logger.Error("ioloop: cannot wake the loop", "err", os.NewSyscallError("write(eventfd)", err))
	}
}

// Stop makes the loop return from Start after the current iteration: the
// callbacks and timers already collected run, then Start returns. It is
// safe from any goroutine and from inside a handler or callback. When the
// loop is not running, the next Start returns at once (Tornado's rule).
func (l *IOLoop) Stop() {
	l.stopping.Store(true)
	l.wakeup()
}

// Close releases the loop: its epoll instance and waker, its pending
// callbacks and timers, and with allFDs every fd still registered. A
// running loop is stopped first; from another goroutine, Close waits until
// Start has returned, and from inside the loop the release happens as
// Start returns. After Close, Start, AddCallback and the handler methods
// return ErrClosed and timers never fire. A second Close returns ErrClosed.
//
// With allFDs, a registered fd is closed only if it is still the file that
// was registered (its epoll_ctl(DEL) succeeds): an fd that the caller
// closed already, and whose number now belongs to another file, is left
// alone.
func (l *IOLoop) Close(allFDs bool) error {
	l.mu.Lock()
	if l.closed {
		err := l.errClosed()
		l.mu.Unlock()
		return fmt.Errorf("ioloop: Close: %w", err)
	}
	l.closed = true
	l.closeAll = allFDs
	running, done := l.running, l.done
	l.mu.Unlock()

	// From now on the handler methods fail, even while a Close called
	// from inside the loop waits for the current iteration to end.
	l.regMu.Lock()
	l.regClosed = true
	l.regMu.Unlock()

	if !running {
		return l.release()
	}
	l.Stop()
	if l.InLoop() {
		return nil
	}
	<-done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closeRes
}

// release frees everything once the loop is closed and not running; the
// release hooks (see onRelease) run just before the poller is closed.
func (l *IOLoop) release() error {
	hooks := l.dropQueues()

	var errs []error
	l.regMu.Lock()
	l.regClosed = true
	if l.closeAll {
		l.table.each(func(fd int, s *handlerSlot) {
			if l.poller.Control(ctlDel, fd, 0, 0) != nil {
				return // no longer the file we registered: not ours to close
			}
			if err := syscall.Close(fd); err != nil {
				errs = append(errs, fmt.Errorf("ioloop: Close: fd %d: %w", fd, os.NewSyscallError("close", err)))
			}
		})
	}
	l.table.pages.Store(nil) // the loop has stopped: nothing reads the table any more
	l.table.count = 0
	l.regMu.Unlock()

	// The hooks run while the C core still exists: OnClose promises it.
	for _, fn := range hooks {
		fn()
	}
	if err := l.poller.Close(); err != nil {
		errs = append(errs, fmt.Errorf("ioloop: Close: %w", err))
	}
	return errors.Join(errs...)
}

// dropQueues forgets the pending callbacks and timers of a closed loop and
// hands back its release hooks. Every pending Timeout is marked as out of
// the heap, so a later RemoveTimeout or Cancel is the no-op it documents.
func (l *IOLoop) dropQueues() (hooks []func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.callbacks = nil
	l.queued.Store(0)
	for _, t := range l.timers {
		t.index, t.fn = -1, nil
	}
	l.timers = nil
	l.timerCount.Store(0)
	l.spare, l.due = nil, nil
	for _, fn := range l.releaseHooks {
		hooks = append(hooks, fn)
	}
	l.releaseHooks = nil
	return hooks
}

// onRelease registers fn to run once when the closed loop is released
// (after Start has returned, on the goroutine doing the release). It is
// how work the loop accepted, such as a queued Connect, keeps a promise to
// call back exactly once even when the loop closes first. cancel
// unregisters fn. ok is false, and fn never runs, if the loop is closed.
func (l *IOLoop) onRelease(fn func()) (cancel func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, false
	}
	if l.releaseHooks == nil {
		l.releaseHooks = make(map[uint64]func())
	}
	l.hookSeq++
	id := l.hookSeq
	l.releaseHooks[id] = fn
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.releaseHooks, id)
	}, true
}

// AddCallback queues fn to run on the loop goroutine in the next
// iteration. Callbacks run in the order added; one added while callbacks
// run waits for the next iteration, so a callback that re-adds itself
// cannot starve I/O or timers. From another goroutine it wakes a sleeping
// loop. Callbacks queued before Start run once the loop starts. It returns
// ErrClosed after Close.
func (l *IOLoop) AddCallback(fn func()) error {
	if fn == nil {
		return fmt.Errorf("ioloop: AddCallback: nil function: %w", syscall.EINVAL)
	}
	if err := l.queueCallback(fn); err != nil {
		return err
	}
	l.wakeup()
	return nil
}

func (l *IOLoop) queueCallback(fn func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("ioloop: AddCallback: %w", l.errClosed())
	}
	l.callbacks = append(l.callbacks, fn)
	l.queued.Store(int32(len(l.callbacks)))
	return nil
}

// runCallbacks runs the callbacks queued before this iteration began.
func (l *IOLoop) runCallbacks() {
	if l.queued.Load() == 0 {
		return // the common case in an I/O-bound loop: no lock taken
	}
	batch := l.takeCallbacks()
	for i, fn := range batch {
		batch[i] = nil // let the closure go as soon as it has run
		l.runFunc("callback", fn)
	}
	bump(&l.stats.callbacks, uint64(len(batch)))
	l.spare = batch[:0]
}

// takeCallbacks swaps the queue for the spare buffer, under mu.
func (l *IOLoop) takeCallbacks() []func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	batch := l.callbacks
	l.callbacks = l.spare[:0]
	l.queued.Store(0)
	return batch
}

// runHandler calls a handler, surviving its panic.
func (l *IOLoop) runHandler(h Handler, fd int, ev Events) {
	defer func() {
		if r := recover(); r != nil {
			l.reportPanic(r, "handler", "the loop goes on", "fd", fd, "events", ev)
		}
	}()
	if l.slowThreshold <= 0 {
		h.HandleEvents(fd, ev)
		return
	}
	began := time.Now()
	h.HandleEvents(fd, ev)
	if d := time.Since(began); d > l.slowThreshold {
		l.logger.Warn("ioloop: slow handler blocked the loop", "fd", fd, "events", ev,
			"duration", d, "threshold", l.slowThreshold, "handler", fmt.Sprintf("%T", h))
	}
}

// runFunc calls a callback or timer function, surviving its panic.
func (l *IOLoop) runFunc(kind string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			l.reportPanic(r, kind, "the loop goes on", "func", funcName(fn))
		}
	}()
	if l.slowThreshold <= 0 {
		fn()
		return
	}
	began := time.Now()
	fn()
	if d := time.Since(began); d > l.slowThreshold {
		l.logger.Warn("ioloop: slow "+kind+" blocked the loop", "func", funcName(fn),
			"duration", d, "threshold", l.slowThreshold)
	}
}

// reportPanic counts and logs a recovered panic with its stack, as Tornado
// logs "Exception in callback"; outcome says what happens next.
func (l *IOLoop) reportPanic(r any, kind, outcome string, attrs ...any) {
	l.stats.panics.Add(1)
	logPanic(l.logger, "ioloop: panic in "+kind+" (recovered; "+outcome+")", r, attrs...)
}

func funcName(fn func()) string {
	if f := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()); f != nil {
		return f.Name()
	}
	return "?"
}
