package ioloop

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// PeriodicCallback calls a function every interval on a loop, after
// Tornado's PeriodicCallback: the schedule stays on the grid set by Start,
// and a call that overruns skips the cycles it missed instead of running
// them back to back.
type PeriodicCallback struct {
	loop     *IOLoop
	interval time.Duration
	fn       func()

	mu      sync.Mutex    // guards the fields below; Start/Stop may come from any goroutine
	jitter  float64       // fraction of interval, see SetJitter
	running bool          // between Start and Stop
	epoch   uint64        // bumped by Start, so a call from before a Stop+Start does not reschedule
	next    time.Duration // next deadline, as a loop clock offset
	timeout *Timeout      // the pending call
}

// NewPeriodicCallback returns a stopped PeriodicCallback that will call fn
// every interval on l once started. A non-positive interval is treated as
// one millisecond rather than spinning the loop.
func NewPeriodicCallback(l *IOLoop, interval time.Duration, fn func()) *PeriodicCallback {
	if interval <= 0 {
		interval = time.Millisecond
	}
	return &PeriodicCallback{loop: l, interval: interval, fn: fn}
}

// SetJitter spreads the calls (Tornado 5.1): each interval is multiplied by
// a random factor in [1-jitter/2, 1+jitter/2], so many periodic callbacks
// started together do not fire together. 0 (the default) disables it;
// values are clamped to [0, 1].
func (p *PeriodicCallback) SetJitter(jitter float64) {
	p.mu.Lock()
	p.jitter = min(max(jitter, 0), 1)
	p.mu.Unlock()
}

// Start schedules the first call one interval from now. Starting a running
// PeriodicCallback does nothing.
func (p *PeriodicCallback) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		return
	}
	p.running = true
	p.epoch++
	p.next = p.loop.now()
	p.scheduleNextLocked()
}

// Stop cancels the pending call; a call already running completes.
func (p *PeriodicCallback) Stop() {
	p.mu.Lock()
	p.running = false
	t := p.timeout
	p.timeout = nil
	p.mu.Unlock()
	p.loop.RemoveTimeout(t)
}

// IsRunning reports whether the callback is started.
func (p *PeriodicCallback) IsRunning() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

func (p *PeriodicCallback) run(epoch uint64) {
	p.mu.Lock()
	if !p.running || p.epoch != epoch {
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	// Reschedule even if fn panics: the loop recovers the panic, and a
	// periodic task that dies silently is worse than one that logs.
	defer func() {
		p.mu.Lock()
		if p.running && p.epoch == epoch {
			p.scheduleNextLocked()
		}
		p.mu.Unlock()
	}()
	p.fn()
}

func (p *PeriodicCallback) scheduleNextLocked() {
	p.next = nextOnGrid(p.next, p.loop.now(), p.period())
	epoch := p.epoch
	p.timeout = p.loop.schedule(p.next, func() { p.run(epoch) })
}

// period is the interval for the next cycle, with jitter applied.
func (p *PeriodicCallback) period() time.Duration {
	if p.jitter == 0 {
		return p.interval
	}
	return time.Duration(float64(p.interval) * (1 + p.jitter*(rand.Float64()-0.5)))
}

// nextOnGrid returns the next deadline after next on a grid of period,
// skipping every whole cycle that already passed by now (Tornado's
// _update_next).
func nextOnGrid(next, now, period time.Duration) time.Duration {
	if next <= now {
		missed := math.Floor(float64(now-next) / float64(period))
		return next + time.Duration(missed+1)*period
	}
	return next + period
}
