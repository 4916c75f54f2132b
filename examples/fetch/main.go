//go:build linux && cgo

// Command fetch fetches URLs with the curl package on one ioloop loop: a
// small load generator and an example of the client.
//
//	fetch [-c CONC] [-n TOTAL] [-http2] [-timeout D] [-k] [-cafile F] [-f] URL...
//
// It fetches the URLs round-robin until TOTAL requests have completed
// (default: each URL once), keeping CONC transfers in flight, shows
// progress on stderr, and prints a summary on stdout: requests, status
// counts, body bytes, errors by kind, p50/p99 latency, requests per
// second and CPU time per request. Bodies are counted as they stream in
// (OnBody), never buffered. It exits with status 1 if any request failed
// (a transport error; with -f, an HTTP status of 400 or more too), 2 on a
// usage error. SIGINT stops it early, with a summary of what completed.
//
// -http2 asks for HTTP/2: negotiated over TLS, and with prior knowledge
// (h2c) for http:// URLs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ioloop-go/ioloop"
	"github.com/ioloop-go/ioloop/curl"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	conc, total int
	http2       bool
	insecure    bool
	failStatus  bool
	timeout     time.Duration
	caFile      string
	progress    time.Duration
	urls        []string
}

func parse(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fetch [-c CONC] [-n TOTAL] [-http2] [-timeout D] [-k] [-cafile F] [-f] URL...")
		fs.PrintDefaults()
	}
	c := &config{}
	fs.IntVar(&c.conc, "c", 1, "transfers in flight at once")
	fs.IntVar(&c.total, "n", 0, "requests in all, round-robin over the URLs (default: each URL once)")
	fs.BoolVar(&c.http2, "http2", false, "HTTP/2: negotiated over TLS, prior knowledge for http:// URLs")
	fs.BoolVar(&c.insecure, "k", false, "do not verify server certificates")
	fs.BoolVar(&c.failStatus, "f", false, "count HTTP statuses of 400 and above as failures")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "per-request timeout (including time queued)")
	fs.StringVar(&c.caFile, "cafile", "", "PEM file of certificate authorities to trust")
	fs.DurationVar(&c.progress, "progress", time.Second, "progress line interval on stderr (0: none)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.urls = fs.Args()
	switch {
	case len(c.urls) == 0:
		fs.Usage()
		return nil, errors.New("no URL given")
	case c.conc < 1:
		return nil, fmt.Errorf("-c %d: need at least 1", c.conc)
	case c.total < 0:
		return nil, fmt.Errorf("-n %d: need at least 0", c.total)
	}
	if c.total == 0 {
		c.total = len(c.urls)
	}
	return c, nil
}

// stats is what the callbacks record; loop goroutine only.
type stats struct {
	started, done, failed int
	bytes                 int64
	status                map[int]int
	errs                  map[string]int
	latency               []time.Duration
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parse(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "fetch: %v\n", err)
		return 2
	}
	loop, err := ioloop.New()
	if err != nil {
		fmt.Fprintf(stderr, "fetch: %v\n", err)
		return 1
	}
	defer loop.Close(false)
	client, err := curl.NewClient(loop, curl.WithMaxClients(cfg.conc))
	if err != nil {
		fmt.Fprintf(stderr, "fetch: %v\n", err)
		return 1
	}

	st := &stats{status: map[int]int{}, errs: map[string]int{}, latency: make([]time.Duration, 0, cfg.total)}
	countBody := func(p []byte) error { st.bytes += int64(len(p)); return nil }
	reqs := make([]*curl.Request, len(cfg.urls))
	for i, u := range cfg.urls {
		reqs[i] = &curl.Request{URL: u, Timeout: cfg.timeout, InsecureSkipVerify: cfg.insecure,
			CAFile: cfg.caFile, OnBody: countBody}
		if cfg.http2 {
			reqs[i].HTTPVersion = curl.HTTP2
			if strings.HasPrefix(strings.ToLower(u), "http://") {
				reqs[i].HTTPVersion = curl.HTTP2PriorKnowledge
			}
		}
	}

	// One transfer; its callback records it and starts the next.
	var launch func()
	launch = func() {
		req := reqs[st.started%len(reqs)]
		st.started++
		began := time.Now()
		client.Fetch(req, func(resp *curl.Response, err error) {
			st.done++
			st.latency = append(st.latency, time.Since(began))
			switch {
			case err != nil:
				st.failed++
				st.errs[errorKind(err)]++
			default:
				st.status[resp.StatusCode]++
				if cfg.failStatus && resp.StatusCode >= 400 {
					st.failed++
				}
			}
			if st.started < cfg.total {
				launch()
			}
			if st.done == cfg.total {
				loop.Stop()
			}
		})
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	interrupted := false
	go func() {
		<-ctx.Done()
		_ = loop.AddCallback(func() {
			if st.done < cfg.total {
				interrupted = true
				loop.Stop()
			}
		})
	}()

	var progress *ioloop.PeriodicCallback
	start := time.Now()
	cpu0 := cpuTime()
	if cfg.progress > 0 {
		progress = ioloop.NewPeriodicCallback(loop, cfg.progress, func() {
			rate := float64(st.done) / time.Since(start).Seconds()
			fmt.Fprintf(stderr, "fetch: %d/%d done, %d failed, %.0f requests/s\n", st.done, cfg.total, st.failed, rate)
		})
		progress.Start()
	}
	_ = loop.AddCallback(func() {
		for st.started < cfg.total && st.started < cfg.conc {
			launch()
		}
	})
	if err := loop.Start(); err != nil {
		fmt.Fprintf(stderr, "fetch: %v\n", err)
		return 1
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	if progress != nil {
		progress.Stop()
	}
	client.Close()

	summary(stdout, cfg, st, elapsed, cpu, interrupted)
	if st.failed > 0 || interrupted {
		return 1
	}
	return 0
}

// errorKind groups errors for the summary: libcurl's code and text, or
// the cause when libcurl had no part in it.
func errorKind(err error) string {
	var e *curl.Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	if e.Code != curl.CodeOK {
		return fmt.Sprintf("%s (curl error %d)", e.Code, int(e.Code))
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Error()
}

func summary(w io.Writer, cfg *config, st *stats, elapsed, cpu time.Duration, interrupted bool) {
	note := ""
	if interrupted {
		note = fmt.Sprintf(" (interrupted: %d of %d)", st.done, cfg.total)
	}
	fmt.Fprintf(w, "requests:   %d (%d ok, %d failed) in %v%s\n", st.done, st.done-st.failed, st.failed,
		elapsed.Round(time.Millisecond), note)
	fmt.Fprintf(w, "status:     %s\n", counts(st.status, func(k int) string { return fmt.Sprint(k) }))
	fmt.Fprintf(w, "bytes:      %d (bodies)\n", st.bytes)
	fmt.Fprintf(w, "errors:     %s\n", counts(st.errs, func(k string) string { return k }))
	if n := len(st.latency); n > 0 {
		slices.Sort(st.latency)
		pct := func(p float64) time.Duration { return st.latency[min(n-1, int(p*float64(n)))] }
		fmt.Fprintf(w, "latency:    p50 %v, p99 %v, max %v\n", pct(0.50).Round(time.Microsecond),
			pct(0.99).Round(time.Microsecond), st.latency[n-1].Round(time.Microsecond))
		fmt.Fprintf(w, "throughput: %.1f requests/s\n", float64(n)/elapsed.Seconds())
		fmt.Fprintf(w, "CPU:        %.1f µs per request (this process, user + system)\n",
			float64(cpu.Microseconds())/float64(n))
	}
}

// counts formats a tally as "k ×n, ..." in key order, "none" when empty.
func counts[K comparable](m map[K]int, name func(K) string) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%s ×%d", name(k), n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// cpuTime is the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
