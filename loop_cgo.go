//go:build linux && cgo

package ioloop

// This is the only file that mentions C. The preamble holds declarations
// only (it includes the header): the definitions come from ioloop_linux.c,
// because a cgo file with an //export may not define C functions in its
// preamble (they would be defined twice at link time).

/*
#cgo CFLAGS: -O2 -std=gnu11 -Wall -Wextra
#cgo nocallback ioloop_go_ctl
#include "csrc/ioloop.h"
#include <sys/epoll.h>
*/
import "C"

import (
	"encoding/binary"
	"os"
	"runtime/cgo"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Compile-time checks that the Go mirror types match the C core's.
var (
	_ [unsafe.Sizeof(event{}) - unsafe.Sizeof(C.ioloop_event{})]struct{}
	_ [unsafe.Sizeof(C.ioloop_event{}) - unsafe.Sizeof(event{})]struct{}
	_ [uint32(Read) ^ uint32(C.EPOLLIN)]struct{}
	_ [uint32(Write) ^ uint32(C.EPOLLOUT)]struct{}
	_ [uint32(Error) ^ uint32(C.EPOLLERR|C.EPOLLHUP)]struct{}
	_ [int(ctlAdd) ^ int(C.EPOLL_CTL_ADD)]struct{}
	_ [int(ctlDel) ^ int(C.EPOLL_CTL_DEL)]struct{}
	_ [int(ctlMod) ^ int(C.EPOLL_CTL_MOD)]struct{}
)

// epollPoller is the production poller: the C core's epoll instance.
type epollPoller struct {
	c         *C.ioloop_poller // C memory, owned by this poller until Close
	wakeFD    int              // the core's eventfd, for Wake without a cgo call
	batchSink batchSink        // where Poll hands each batch
	sink      cgo.Handle       // refers to batchSink, for the benchmarks' C→Go shapes

	// wakeMu orders Wake and the counter reads (readers, any goroutine)
	// with Close (writer), so a wakeup that raced with Close never writes
	// to a closed fd number that may already belong to another file, and
	// nothing reads the C core once it is freed.
	wakeMu sync.RWMutex
	closed bool          // under wakeMu
	final  [3]C.uint64_t // under wakeMu: the C counters as Close found them
}

func newPoller(sink batchSink) (poller, error) {
	var c *C.ioloop_poller
	if rc := C.ioloop_open(&c); rc < 0 {
		return nil, os.NewSyscallError("epoll_create1/eventfd", syscall.Errno(-rc))
	}
	return &epollPoller{c: c, wakeFD: int(c.wakefd), batchSink: sink, sink: cgo.NewHandle(sink)}, nil
}

func (p *epollPoller) Control(op ctlOp, fd int, events Events, gen uint32) error {
	if rc := C.ioloop_go_ctl(C.uintptr_t(uintptr(unsafe.Pointer(p.c))), C.int(op), C.int(fd), C.uint32_t(events), C.uint32_t(gen)); rc < 0 {
		return syscall.Errno(-rc)
	}
	return nil
}

// Poll is one Go→C call per iteration: the C core waits, serves C
// watches and timers, and leaves the Go registrations' events in its
// buffer, which Go dispatches after the call returns (no C→Go crossing).
// bench: BenchmarkDispatch measures this shape against the C core calling
// Go back once per batch and once per event.
func (p *epollPoller) Poll(timeoutMs int) (bool, error) {
	rc := C.ioloop_go_poll(C.uintptr_t(uintptr(unsafe.Pointer(p.c))), C.int(timeoutMs))
	if rc < 0 {
		return false, syscall.Errno(-rc)
	}
	if n := int(rc >> 1); n > 0 {
		p.batchSink.dispatchBatch(unsafe.Slice((*event)(unsafe.Pointer(p.c.ready)), n))
	}
	return rc&1 != 0, nil
}

// wakeValue is uint64(1) in host byte order, what Wake adds to the eventfd
// counter. A package variable, so that writing it allocates nothing.
var wakeValue = func() (b [8]byte) {
	binary.NativeEndian.PutUint64(b[:], 1)
	return b
}()

func (p *epollPoller) Wake() error {
	p.wakeMu.RLock()
	defer p.wakeMu.RUnlock()
	if p.closed {
		return nil
	}
	_, err := unix.Write(p.wakeFD, wakeValue[:])
	if err == unix.EAGAIN {
		return nil // the counter is saturated: the loop is awake anyway
	}
	return err
}

func (p *epollPoller) Close() error {
	p.wakeMu.Lock()
	defer p.wakeMu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	C.ioloop_counters(p.c, &p.final[0], &p.final[1], &p.final[2])
	C.ioloop_close(p.c)
	p.c = nil
	p.sink.Delete()
	return nil
}

func (p *epollPoller) capi() unsafe.Pointer {
	p.wakeMu.RLock()
	defer p.wakeMu.RUnlock()
	if p.closed {
		return nil
	}
	return unsafe.Pointer(C.ioloop_api_table(p.c))
}

func (p *epollPoller) cCounters() (events, stale, timers uint64) {
	p.wakeMu.RLock()
	defer p.wakeMu.RUnlock()
	c := p.final
	if !p.closed {
		C.ioloop_counters(p.c, &c[0], &c[1], &c[2])
	}
	return uint64(c[0]), uint64(c[1]), uint64(c[2])
}

//export ioloopGoDispatch
func ioloopGoDispatch(ctx C.uintptr_t, evs *C.ioloop_event, n C.int) {
	sink := cgo.Handle(ctx).Value().(batchSink)
	sink.dispatchBatch(unsafe.Slice((*event)(unsafe.Pointer(evs)), int(n)))
}

// pollEach and pollCallback exist for the benchmarks only (a _test.go
// file cannot use cgo): the two dispatch shapes we measured and rejected.

// pollEach: the C core calls Go once per event.
func (p *epollPoller) pollEach(timeoutMs int) (bool, error) {
	rc := C.ioloop_poll_each(p.c, C.int(timeoutMs), C.uintptr_t(p.sink))
	if rc < 0 {
		return false, syscall.Errno(-rc)
	}
	return rc&1 != 0, nil
}

// pollCallback: the C core calls Go back once per batch.
func (p *epollPoller) pollCallback(timeoutMs int) (bool, error) {
	rc := C.ioloop_poll(p.c, C.int(timeoutMs), C.uintptr_t(p.sink))
	if rc < 0 {
		return false, syscall.Errno(-rc)
	}
	return rc&1 != 0, nil
}
