package ioloop

import (
	"context"
	"fmt"
	"sync"
	"syscall"
)

// RunSync starts the loop, runs fn on it, and stops the loop when fn calls
// done (from the loop or any goroutine); it returns the error given to
// done. It returns ctx.Err() when ctx ends first, ErrStopped when someone
// else stops the loop first, ErrRunning when the loop already runs, and
// ErrClosed after Close. A panic in fn is recovered and returned as an
// error. This is Tornado's run_sync, with a context for its timeout.
//
// Neither done nor ctx can affect any other run of the loop: a done called
// late, or a ctx that ends after RunSync returned (or while it returned
// ErrRunning), stops nothing.
func (l *IOLoop) RunSync(ctx context.Context, fn func(done func(error))) error {
	if fn == nil {
		return fmt.Errorf("ioloop: RunSync: nil function: %w", syscall.EINVAL)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	var (
		mu       sync.Mutex
		finished bool
		result   error
		run      uint64 // the run this call started; set before anything can call finish
	)
	finish := func(err error) {
		mu.Lock()
		first := !finished
		if first {
			finished, result = true, err
		}
		mu.Unlock()
		if first {
			l.stopRun(run)
		}
	}
	call := func() {
		defer func() {
			if r := recover(); r != nil {
				l.reportPanic(r, "RunSync function", "RunSync returns it as an error")
				finish(fmt.Errorf("ioloop: RunSync: function panicked: %v", r))
			}
		}()
		fn(finish)
	}

	// The function and the context watcher are armed only once this call
	// owns the run (under the loop's lock, in start), so an ErrRunning
	// leaves nothing behind that could stop somebody else's run.
	var stopWatching func() bool
	err := l.start("RunSync", func(id uint64) {
		run = id
		l.callbacks = append(l.callbacks, call)
		l.queued.Store(int32(len(l.callbacks)))
		stopWatching = context.AfterFunc(ctx, func() { finish(ctx.Err()) })
	})
	if stopWatching != nil {
		stopWatching()
	}
	if err != nil {
		return err
	}

	mu.Lock()
	defer mu.Unlock()
	if !finished {
		// Another Stop won; the function never reported. Later calls of
		// done must not stop the loop's next run (stopRun already ensures
		// that; this makes them no-ops).
		finished = true
		return ErrStopped
	}
	return result
}
