package ioloop

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a loop's counters, for dashboards and tests.
// Counters only grow, across restarts, until the loop is garbage.
type Stats struct {
	Iterations       uint64 // loop iterations (one epoll_wait each)
	Events           uint64 // handler calls
	StaleEvents      uint64 // events dropped because their fd was removed or re-registered
	Callbacks        uint64 // AddCallback functions run
	Timers           uint64 // timers fired
	Panics           uint64 // panics recovered in handlers, callbacks and timers
	Wakeups          uint64 // eventfd writes by other goroutines (at most one per sleep)
	CEvents          uint64 // fd events served to C watches (see CAPI), in C
	CStaleEvents     uint64 // C-tagged events dropped because their watch ended or changed
	CTimers          uint64 // C timers run (see CAPI)
	Handlers         int    // fds registered now
	PendingCallbacks int    // callbacks waiting for the next iteration
	PendingTimers    int    // timers scheduled and not yet due or removed
	// PollTime is the time spent waiting in epoll_wait (idle, or waiting for
	// I/O); WorkTime the rest of the time the loop ran (handlers,
	// callbacks, timers and the loop's own work). Their ratio is libuv's
	// idle-time metric: a loop near 100% work is saturated. Both stay zero
	// unless the loop was created WithPollTimeMetrics.
	PollTime time.Duration
	WorkTime time.Duration
}

// loopStats are the counters behind Stats. Readers on any goroutine load
// them atomically; the loop goroutine is the only writer of all but
// wakeups (producers) and runNanos (under mu), so it updates them with
// bump, not Add: a locked read-modify-write per iteration and per batch is
// measurable in the dispatch benchmarks, a plain store is not.
type loopStats struct {
	iterations, events, stale, callbacks, timers, panics, wakeups atomic.Uint64
	pollNanos, runNanos                                           atomic.Uint64 // runNanos: completed Start calls
}

// bump adds n to a counter that only the loop goroutine writes.
func bump(c *atomic.Uint64, n uint64) { c.Store(c.Load() + n) }

// Stats returns the loop's counters. It is safe from any goroutine; the
// values are read one by one, not as one atomic snapshot.
func (l *IOLoop) Stats() Stats {
	s := Stats{
		Iterations:  l.stats.iterations.Load(),
		Events:      l.stats.events.Load(),
		StaleEvents: l.stats.stale.Load(),
		Callbacks:   l.stats.callbacks.Load(),
		Timers:      l.stats.timers.Load(),
		Panics:      l.stats.panics.Load(),
		Wakeups:     l.stats.wakeups.Load(),
		PollTime:    time.Duration(l.stats.pollNanos.Load()),
	}
	if c, ok := l.poller.(cCore); ok {
		s.CEvents, s.CStaleEvents, s.CTimers = c.cCounters()
	}
	run := time.Duration(l.stats.runNanos.Load())
	l.mu.Lock()
	s.PendingCallbacks = len(l.callbacks)
	s.PendingTimers = len(l.timers)
	if l.running {
		run += time.Since(l.startedAt)
	}
	l.mu.Unlock()
	l.regMu.Lock()
	s.Handlers = l.table.count
	l.regMu.Unlock()
	if l.pollTime {
		s.WorkTime = max(run-s.PollTime, 0)
	}
	return s
}
