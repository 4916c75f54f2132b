// Package clientrun is the measuring harness shared by the Go HTTP-client
// peers (the C and Python peers do the same by hand): the same flags, a
// warm-up, then a window measured by time (-duration-ms) or by count
// (-n), and one result line on stdout:
//
//	requests=N errors=E cpu_us=C wall_us=W rss_kb_start=R0 rss_kb_end=R1 fds_start=F0 fds_end=F1
//
// cpu_us is the process's user + system time over the window (getrusage:
// every thread). The process exits once the line is written.
package clientrun

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Args are the flags every client peer takes.
type Args struct {
	URL      string
	Conc     int
	Warmup   time.Duration
	Duration time.Duration
	Total    int64 // > 0: measure this many requests instead of a duration
	Keep     bool  // keep the body in memory (hello); false: consume and discard it (large bodies)
}

// Parse parses the command line.
func Parse() Args {
	var a Args
	var warm, dur int
	var body string
	flag.StringVar(&a.URL, "url", "", "URL to fetch")
	flag.IntVar(&a.Conc, "c", 100, "transfers in flight")
	flag.IntVar(&warm, "warmup-ms", 500, "warm-up before the measured window, ms")
	flag.IntVar(&dur, "duration-ms", 1000, "measured window, ms (unless -n)")
	flag.Int64Var(&a.Total, "n", 0, "measure this many requests instead of a duration")
	flag.StringVar(&body, "body", "keep", "keep (in memory) or discard (streamed)")
	flag.Parse()
	if a.URL == "" || a.Conc < 1 || (body != "keep" && body != "discard") {
		flag.Usage()
		os.Exit(2)
	}
	a.Warmup, a.Duration = time.Duration(warm)*time.Millisecond, time.Duration(dur)*time.Millisecond
	a.Keep = body == "keep"
	return a
}

// Meter counts completed requests; Done is safe from any goroutine.
type Meter struct {
	args  Args
	done  atomic.Int64
	errs  atomic.Int64
	limit atomic.Int64 // done count that ends a -n window (0: none yet)
	hit   chan struct{}
}

// NewMeter starts the window clock: it prints the result and exits the
// process when the window ends.
func NewMeter(a Args) *Meter {
	m := &Meter{args: a, hit: make(chan struct{})}
	go m.run()
	return m
}

// Done records one completed request.
func (m *Meter) Done(failed bool) {
	if failed {
		m.errs.Add(1)
	}
	if n := m.done.Add(1); n == m.limit.Load() {
		close(m.hit)
	}
}

func (m *Meter) run() {
	time.Sleep(m.args.Warmup)
	n0, e0, c0, t0 := m.done.Load(), m.errs.Load(), CPU(), time.Now()
	rss0, fds0 := RSSKiB(), OpenFDs()
	if m.args.Total > 0 {
		m.limit.Store(n0 + m.args.Total)
		if m.done.Load() >= n0+m.args.Total {
			close(m.hit)
		}
		<-m.hit
	} else {
		time.Sleep(m.args.Duration)
	}
	n, e, c, wall := m.done.Load()-n0, m.errs.Load()-e0, CPU()-c0, time.Since(t0)
	fmt.Printf("requests=%d errors=%d cpu_us=%d wall_us=%d rss_kb_start=%d rss_kb_end=%d fds_start=%d fds_end=%d\n",
		n, e, c.Microseconds(), wall.Microseconds(), rss0, RSSKiB(), fds0, OpenFDs())
	os.Exit(0)
}

// CPU is the process's user + system time.
func CPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RSSKiB is the resident set size in KiB.
func RSSKiB() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize()) / 1024
}

// OpenFDs counts the process's open file descriptors.
func OpenFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents) - 1 // ReadDir's own
}
