package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints what the suite is doing on stderr, with an estimate of
// what is left: the expected time of the remaining timed runs, scaled by
// how the finished ones compared with their expectation (server starts and
// checks included), plus the micro-benchmark phase, estimated from
// -benchtime until its first results come in and from their pace after
// that. The micro phase counts as the last step.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	start    time.Time
	total    int           // timed runs, the micro phase included
	done     int           // runs finished or skipped
	expected time.Duration // per run, before any has finished
	now      func() time.Time

	micro        bool          // the suite ends with the micro-benchmarks
	microLines   int           // result lines expected from go test -bench
	microPerLine time.Duration // expected time per line, before any came
	microFirst   time.Time     // when the first result line came
	microSeen    int           // result lines so far
	microEnded   bool
}

// newProgress counts runs timed runs (perRun each, expected) and, when
// microLines > 0, a micro-benchmark phase of that many result lines at
// about perLine each.
func newProgress(w io.Writer, runs int, perRun time.Duration, microLines int, perLine time.Duration) *progress {
	p := &progress{w: w, start: time.Now(), total: runs, expected: perRun, now: time.Now}
	if microLines > 0 {
		p.micro, p.microLines, p.microPerLine = true, microLines, perLine
		p.total++
	}
	return p
}

func (p *progress) remaining() time.Duration {
	now := p.now()
	runs, done := p.total, p.done
	if p.micro {
		runs--
		done = min(done, runs)
	}
	var left time.Duration
	switch {
	case done >= runs:
	case done == 0:
		left = time.Duration(runs) * p.expected
	default:
		left = now.Sub(p.start) / time.Duration(done) * time.Duration(runs-done)
	}
	if p.micro && !p.microEnded {
		left += p.microRemaining(now)
	}
	return left
}

// microRemaining: the expectation until the first result line (go test
// builds and sets up first); then the expected time per line until a
// second one gives a pace; then the pace of the lines since the first.
func (p *progress) microRemaining(now time.Time) time.Duration {
	left := time.Duration(max(p.microLines-p.microSeen, 0))
	if p.microSeen < 2 {
		return left * p.microPerLine
	}
	return now.Sub(p.microFirst) / time.Duration(p.microSeen-1) * left
}

func (p *progress) prefix() string {
	return fmt.Sprintf("[%d/%d %s elapsed, ~%s left]", min(p.done+1, p.total), p.total,
		fmtClock(p.now().Sub(p.start)), fmtClock(p.remaining()))
}

// run announces a timed run of peer in scenario.
func (p *progress) run(scenario, peer string, i, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s / %s: run %d of %d\n", p.prefix(), scenario, peer, i, n)
}

// runDone counts a finished run.
func (p *progress) runDone() {
	p.mu.Lock()
	p.done++
	p.mu.Unlock()
}

// skip counts n runs that will not take place (their peer failed).
func (p *progress) skip(n int) {
	p.mu.Lock()
	p.done += max(n, 0)
	p.mu.Unlock()
}

// cellDone reports a peer's result in a scenario in one line, once its
// last run is over.
func (p *progress) cellDone(c Cell) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch c.Status {
	case statusSkipped:
		fmt.Fprintf(p.w, "    %s / %s: skipped: %s\n", c.Scenario, c.Peer, c.Reason)
		return
	case statusFailed:
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

// microStep announces the micro-benchmark phase (the last cell).
func (p *progress) microStep(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s micro: %s (~%d results)\n", p.prefix(), msg, p.microLines)
}

// microResult reports one finished benchmark (a result line of go test).
func (p *progress) microResult(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.microSeen++; p.microSeen == 1 {
		p.microFirst = p.now()
	}
	fmt.Fprintf(p.w, "%s micro: %s (%d of ~%d)\n", p.prefix(), name, p.microSeen, p.microLines)
}

func (p *progress) microDone() {
	p.mu.Lock()
	p.done++
	p.microEnded = true
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
