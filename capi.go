package ioloop

import (
	_ "embed"
	"fmt"
	"syscall"
	"unsafe"
)

// CAPIHeader is csrc/ioloop_api.h, the C header of the API that CAPI
// hands out, for cgo packages in other modules: they cannot include a file
// from this module's directory, so they keep a copy, written by
//
//	go run github.com/ioloop-go/ioloop/cmd/ioloop-capi-header -o ioloop_api.h
//
// (typically from a //go:generate line), and check the table's version at
// run time.
//
//go:embed csrc/ioloop_api.h
var CAPIHeader string

// CAPI returns the loop's C API: a pointer to the ioloop_api table of
// csrc/ioloop_api.h (see CAPIHeader), for C code linked into the program.
// Through it, C code watches fds and runs timers whose callbacks are C
// functions, served by the loop's C core inside the same epoll_wait batch
// as the Go handlers, on the loop's OS thread, without crossing into Go.
// That is how a C library that hands out fds (libcurl's multi-socket
// interface, c-ares, libpq...) runs on the loop at C speed; the curl
// package is one.
//
// The pointer is C memory: pass it to C as a (*C.ioloop_api). The table's
// functions may be called only on the loop's thread (from a handler,
// callback or timer of this loop, or from a C callback of the API), and
// the table is valid until the loop is closed: register cleanup with
// OnClose, which runs while it is still valid. It returns ErrClosed after
// Close, and an error wrapping ErrUnsupported where the C core does not
// exist. Safe from any goroutine.
func (l *IOLoop) CAPI() (unsafe.Pointer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("ioloop: CAPI: %w", l.errClosed())
	}
	if c, ok := l.poller.(cCore); ok {
		if p := c.capi(); p != nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("ioloop: CAPI: this loop's poller has no C core: %w", ErrUnsupported)
}

// OnClose registers fn to run once when the loop is closed: after the loop
// has stopped, before its C core (see CAPI) is freed, on the goroutine
// that performs the release (the one calling Close, or the loop's own as
// Start returns when Close was called from inside the loop). It is for
// integrations that keep state tied to the loop, C state in particular,
// and must release it or fail their pending work: the curl package fails
// the transfers still in flight there. cancel unregisters fn (a no-op once
// it ran). OnClose returns ErrClosed, and fn never runs, when the loop is
// already closed. Safe from any goroutine.
func (l *IOLoop) OnClose(fn func()) (cancel func(), err error) {
	if fn == nil {
		return nil, fmt.Errorf("ioloop: OnClose: nil function: %w", syscall.EINVAL)
	}
	cancel, ok := l.onRelease(fn)
	if !ok {
		return nil, fmt.Errorf("ioloop: OnClose: %w", l.errClosed())
	}
	return cancel, nil
}
