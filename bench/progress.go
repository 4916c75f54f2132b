package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints what the suite is doing on stderr, with an estimate of
// what is left: the expected time of the remaining cells, scaled by how the
// finished ones compared with their expectation.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	start    time.Time
	total    int           // cells
	done     int           // cells finished
	expected time.Duration // per cell, before any has finished
	now      func() time.Time
}

func newProgress(w io.Writer, cells int, perCell time.Duration) *progress {
	return &progress{w: w, start: time.Now(), total: cells, expected: perCell, now: time.Now}
}

func (p *progress) remaining() time.Duration {
	if p.done == 0 {
		return time.Duration(p.total) * p.expected
	}
	elapsed := p.now().Sub(p.start)
	return elapsed / time.Duration(p.done) * time.Duration(p.total-p.done)
}

func (p *progress) prefix() string {
	return fmt.Sprintf("[%d/%d %s elapsed, ~%s left]", p.done+1, p.total,
		fmtClock(p.now().Sub(p.start)), fmtClock(p.remaining()))
}

// run announces a timed run of peer in scenario.
func (p *progress) run(scenario, peer string, i, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s / %s: run %d of %d\n", p.prefix(), scenario, peer, i, n)
}

// cellDone closes a cell with a one-line summary.
func (p *progress) cellDone(c Cell) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if c.Status != "ok" {
		fmt.Fprintf(p.w, "    %s / %s: FAILED: %s\n", c.Scenario, c.Peer, c.Reason)
		return
	}
	warn := ""
	if c.Saturated {
		warn = " (load generator saturated)"
	}
	fmt.Fprintf(p.w, "    %s / %s: %s ops/s, p99 %s, server %s CPU/op, loadgen %.0f%%%s\n",
		c.Scenario, c.Peer, fmtRate(c.Median.OpsPerSec), fmtMicros(c.Median.P99us),
		fmtMicros(c.Median.CPUPerOpUs), c.Median.LoadgenCPUPct, warn)
}

// microStep counts the micro-benchmarks as one cell.
func (p *progress) microStep(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s micro: %s\n", p.prefix(), msg)
}

func (p *progress) microDone() {
	p.mu.Lock()
	p.done++
	p.mu.Unlock()
}

func (p *progress) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

func fmtClock(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
