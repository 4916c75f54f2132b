package ioloop

import "unsafe"

// poller is the seam between the loop's logic and the operating system.
// The production implementation is the cgo epoll core (loop_cgo.go); tests
// substitute a gomock mock to inject errors and hand-made batches.
//
// What every poller must provide (the same contract the Go runtime writes
// at the top of netpoll.go):
//
//   - Control registers, changes or removes interest in fd. It returns the
//     raw syscall.Errno of epoll_ctl on failure, so the loop can tell a
//     benign error (ENOENT on DEL: already gone) from a real one.
//   - Poll blocks for at most timeoutMs milliseconds (-1: no limit, 0: do
//     not block) and, before returning, hands every non-empty batch of
//     ready events to the batchSink it was built with, on the calling
//     goroutine, in one call. woken reports that the waker fired (and was
//     drained). An interrupted wait (EINTR) returns no events and no error.
//   - Wake makes a blocked or upcoming Poll return promptly. It is safe from
//     any goroutine, and a no-op once Close has run (so a late wakeup never
//     writes to a closed, possibly reused, fd number).
//   - Close releases the poller. It is never called while Poll runs.
type poller interface {
	Control(op ctlOp, fd int, events Events, gen uint32) error
	Poll(timeoutMs int) (woken bool, err error)
	Wake() error
	Close() error
}

// cCore is implemented by the production poller, whose C core serves the
// C API (csrc/ioloop_api.h) besides the loop's Go registrations.
type cCore interface {
	// capi returns the C API table; nil once the poller is closed.
	capi() unsafe.Pointer
	// cCounters returns the C side's counters: events served to C
	// watches, C-tagged events dropped as stale, C timers run.
	cCounters() (events, stale, timers uint64)
}

// batchSink receives the batches a poller reports. *IOLoop implements it.
type batchSink interface {
	dispatchBatch(evs []event)
}

// ctlOp is an epoll_ctl operation; the values are Linux's.
type ctlOp int

const (
	ctlAdd ctlOp = 1 // EPOLL_CTL_ADD
	ctlDel ctlOp = 2 // EPOLL_CTL_DEL
	ctlMod ctlOp = 3 // EPOLL_CTL_MOD
)

func (op ctlOp) String() string {
	switch op {
	case ctlAdd:
		return "EPOLL_CTL_ADD"
	case ctlDel:
		return "EPOLL_CTL_DEL"
	case ctlMod:
		return "EPOLL_CTL_MOD"
	}
	return "EPOLL_CTL_?"
}
