//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

const helloBodyText = "Hello, world!"

// builtPeer is a peer ready to start.
type builtPeer struct {
	Peer
	launch Launcher
}

// runner runs the cells of one invocation.
type runner struct {
	opts      Options
	self      string // this binary, re-executed as the load generator
	wrk       string // path of wrk, "" when not installed
	serverCPU int    // -1: unpinned
	loadCPU   int
	progress  *progress

	mu      sync.Mutex
	current *server // stopped by the signal handler
}

func (r *runner) setCurrent(s *server) {
	r.mu.Lock()
	r.current = s
	r.mu.Unlock()
}

// stopCurrent stops the running server, for an interrupted suite.
func (r *runner) stopCurrent() {
	r.mu.Lock()
	s := r.current
	r.mu.Unlock()
	if s != nil {
		s.stop()
	}
}

// runCell measures peer p in scenario sc: start, check, Count timed runs,
// stop. Anything that goes wrong is the cell's Reason, never a crash.
func (r *runner) runCell(sc Scenario, p *builtPeer) Cell {
	cell := Cell{Scenario: sc.Name, Peer: p.Name, Status: "ok", Tool: "loadgen", LoadgenCores: 1}
	fail := func(format string, args ...any) Cell {
		cell.Status = "failed"
		cell.Reason = fmt.Sprintf(format, args...)
		return cell
	}
	serverCPU, loadCPU, loops := r.serverCPU, r.loadCPU, 1
	if sc.Loops > 1 {
		serverCPU, loadCPU, loops = -1, -1, sc.Loops
		cell.LoadgenCores = sc.Loops
	}
	useWrk := sc.Wrk && r.wrk != "" && sc.Loops <= 1 && wholeSeconds(r.opts.Duration)
	if useWrk {
		cell.Tool = "wrk"
	}

	addr, err := freeAddr()
	if err != nil {
		return fail("no free port: %v", err)
	}
	argv, env := p.launch(sc.mode(), addr, loops)
	srv, err := startServer(argv, env, addr, serverCPU)
	if err != nil {
		return fail("start: %v", err)
	}
	r.setCurrent(srv)
	defer func() {
		srv.stop()
		r.setCurrent(nil)
	}()

	if err := check(sc, addr); err != nil {
		return fail("correctness check: %v", err)
	}
	for i := 0; i < r.opts.Count; i++ {
		r.progress.run(sc.Name, p.Name, i+1, r.opts.Count)
		var run Run
		if useWrk {
			run, err = r.measureWrk(sc, srv, loadCPU)
		} else {
			run, err = r.measureLoadgen(sc, srv, loadCPU)
		}
		if aerr := srv.alive(); aerr != nil {
			err = aerr
		}
		if err != nil {
			return fail("run %d: %v", i+1, err)
		}
		cell.Runs = append(cell.Runs, run)
	}
	if rss, err := peakRSS(srv.pid()); err == nil {
		cell.PeakRSSKiB = rss
	}
	cell.Median = medianRun(cell.Runs)
	cell.Saturated = cell.Median.LoadgenCPUPct > saturationPct*float64(cell.LoadgenCores)
	return cell
}

// check runs a few verified operations before anything is timed, so that a
// peer answering wrongly is reported as failed rather than fast.
func check(sc Scenario, addr string) error {
	cfg := LoadConfig{Addr: addr, Conns: min(sc.Conns, 8), Duration: 10 * time.Second}
	if sc.Kind == "echo" {
		cfg.Mode, cfg.Size, cfg.MaxOps = "echo", sc.Size, 20
	} else {
		cfg.Mode, cfg.Depth, cfg.MaxOps, cfg.Body = "http", sc.Depth, 2*int64(max(sc.Depth, 1)), helloBodyText
	}
	_, err := runLoad(cfg)
	return err
}

func (r *runner) measureLoadgen(sc Scenario, srv *server, cpu int) (Run, error) {
	cfg := LoadConfig{
		Mode: "echo", Addr: srv.addr, Conns: sc.Conns, Size: sc.Size, Depth: sc.Depth,
		Workers: max(sc.Loops, 1), Warmup: r.opts.Warmup, Duration: r.opts.Duration,
		ServerPID: srv.pid(),
	}
	if sc.Kind == "http" {
		cfg.Mode, cfg.Body = "http", helloBodyText
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return Run{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Warmup+r.opts.Duration+60*time.Second)
	defer cancel()
	out, _, err := runChild(ctx, cpu, []string{r.self, "-loadgen", string(js)}, nil)
	var res LoadResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		if err == nil {
			err = fmt.Errorf("load generator output: %v", jerr)
		}
		return Run{}, fmt.Errorf("load generator: %v", err)
	}
	if res.Err != "" {
		return Run{}, fmt.Errorf("%s", res.Err)
	}
	if err != nil {
		return Run{}, fmt.Errorf("load generator: %v", err)
	}
	if res.Ops == 0 {
		// Say whether the server was busy (slow) or idle (stalled).
		return Run{}, fmt.Errorf("no operation completed in %v (server used %.0f ms of CPU, load generator %.0f ms; %d operations before the window)",
			r.opts.Duration, res.ServerCPU*1e3, res.LoadgenCPU*1e3, res.AllOps)
	}
	return Run{
		Ops: res.Ops, Seconds: res.Seconds, OpsPerSec: float64(res.Ops) / res.Seconds,
		P50us: float64(res.P50ns) / 1e3, P99us: float64(res.P99ns) / 1e3,
		ServerCPUSec: res.ServerCPU, CPUPerOpUs: res.ServerCPU / float64(res.Ops) * 1e6,
		LoadgenCPUPct: res.LoadgenCPU / res.Seconds * 100,
	}, nil
}

// measureWrk times the server with wrk (one thread, pinned like the built-in
// generator). The server's CPU is sampled around wrk's timed run, which adds
// its connection setup (well under 1% of the window) to the window.
func (r *runner) measureWrk(sc Scenario, srv *server, cpu int) (Run, error) {
	url := "http://" + srv.addr + "/"
	wrkArgs := func(d time.Duration) []string {
		secs := int(math.Ceil(d.Seconds()))
		return []string{r.wrk, "-t1", "-c" + strconv.Itoa(sc.Conns), "-d" + strconv.Itoa(secs) + "s", "--latency", url}
	}
	limit := r.opts.Warmup + r.opts.Duration + 60*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if r.opts.Warmup > 0 {
		if _, _, err := runChild(ctx, cpu, wrkArgs(r.opts.Warmup), nil); err != nil {
			return Run{}, fmt.Errorf("wrk warm-up: %v", err)
		}
	}
	before, err := procCPU(srv.pid())
	if err != nil {
		return Run{}, err
	}
	start := time.Now()
	out, ps, err := runChild(ctx, cpu, wrkArgs(r.opts.Duration), nil)
	wall := time.Since(start).Seconds()
	after, cerr := procCPU(srv.pid())
	if err != nil {
		return Run{}, fmt.Errorf("wrk: %v", err)
	}
	if cerr != nil {
		return Run{}, cerr
	}
	w, err := parseWrk(out)
	if err != nil {
		return Run{}, err
	}
	if w.Errors != "" {
		return Run{}, fmt.Errorf("wrk: %s", w.Errors)
	}
	self := (ps.UserTime() + ps.SystemTime()).Seconds()
	return Run{
		Ops: w.Requests, Seconds: w.Seconds, OpsPerSec: float64(w.Requests) / w.Seconds,
		P50us: float64(w.P50) / 1e3, P99us: float64(w.P99) / 1e3,
		ServerCPUSec: after - before, CPUPerOpUs: (after - before) / float64(w.Requests) * 1e6,
		LoadgenCPUPct: self / wall * 100,
	}, nil
}

func wholeSeconds(d time.Duration) bool {
	return d >= time.Second && d%time.Second == 0
}

// pickCPUs returns the server's and the load generator's CPU: the first two
// this process may run on, or -1, -1 with fewer than two.
func pickCPUs() (int, int) {
	cpus := allowedCPUs()
	if len(cpus) < 2 {
		return -1, -1
	}
	return cpus[0], cpus[1]
}

func lookWrk() string {
	p, err := exec.LookPath("wrk")
	if err != nil {
		return ""
	}
	return p
}
