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
