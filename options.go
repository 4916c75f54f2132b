package ioloop

import (
	"log/slog"
	"time"
)

// Option configures a loop created by New.
type Option func(*options)

type options struct {
	logger        *slog.Logger
	slowThreshold time.Duration
	pollTime      bool
	keepProcs     bool
}

// WithLogger sets where the loop reports recovered panics, slow callbacks
// and unexpected system errors. The default is slog.Default().
func WithLogger(logger *slog.Logger) Option {
	return func(o *options) {
		if logger != nil {
			o.logger = logger
		}
	}
}

// WithSlowCallbackThreshold makes the loop log every handler, callback or
// timer that runs longer than d, like Tornado's blocking log: a slow
// callback delays every other fd on the loop. Zero (the default) turns it
// off and costs nothing; when on, each call is timed (two clock reads).
func WithSlowCallbackThreshold(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.slowThreshold = d
		}
	}
}

// WithPollTimeMetrics makes the loop measure the time it spends waiting in
// epoll_wait, reported as Stats.PollTime and Stats.WorkTime (libuv's
// idle-time metric, also opt-in there). It costs two clock reads per
// iteration, which on a VM can be a tenth of the cost of an event, so it
// is off by default.
func WithPollTimeMetrics() Option {
	return func(o *options) { o.pollTime = true }
}

// WithGOMAXPROCSUnchanged stops Start from raising GOMAXPROCS (see Start).
// Use it when the process's GOMAXPROCS is set on purpose and one loop
// holding the only P while it runs is what you want.
func WithGOMAXPROCSUnchanged() Option {
	return func(o *options) { o.keepProcs = true }
}
