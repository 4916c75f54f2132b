//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
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
	tls       tlsFiles // the https scenarios' certificate and key

	mu      sync.Mutex
	running map[*server]bool // stopped by the signal handler
}

func (r *runner) track(s *server, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running == nil {
		r.running = map[*server]bool{}
	}
	if on {
		r.running[s] = true
	} else {
		delete(r.running, s)
	}
}

// stopAll stops the running servers, for an interrupted suite.
func (r *runner) stopAll() {
	r.mu.Lock()
	var ss []*server
	for s := range r.running {
		ss = append(ss, s)
	}
	r.mu.Unlock()
	for _, s := range ss {
		s.stop()
	}
}

// slot is one timed run of a scenario: repetition Rep (0-based) of the
// Peer-th peer.
type slot struct{ Rep, Peer int }

// runOrder is the order of a scenario's timed runs: repetition by
// repetition, every peer once in each, in the same order. Drift on a shared
// machine (another tenant's load, thermal or frequency changes) then hits
// every peer alike, and the runs of one repetition, minutes apart at most,
// can be compared pairwise.
func runOrder(peers, count int) []slot {
	order := make([]slot, 0, peers*count)
	for rep := 0; rep < count; rep++ {
		for p := 0; p < peers; p++ {
			order = append(order, slot{rep, p})
		}
	}
	return order
}

// runScenario measures every peer of ps in scenario sc, interleaved (see
// runOrder): it starts and checks every peer's server, then runs the
// repetitions, then reads each server's peak RSS and stops them all. A
// server waits idle, in its epoll_wait, while the others are measured. A
// peer that fails is reported with its reason and left out of the later
// repetitions; nothing that goes wrong crashes the suite.
func (r *runner) runScenario(sc Scenario, ps []*builtPeer) []Cell {
	if isClientKind(sc.Kind) {
		return r.runClientScenario(sc, ps)
	}
	cells := make([]Cell, len(ps))
	servers := make([]*server, len(ps))
	defer func() {
		for _, s := range servers {
			if s != nil {
				s.stop()
				r.track(s, false)
			}
		}
	}()
	fail := func(i int, format string, args ...any) {
		cells[i].Status = statusFailed
		cells[i].Reason = fmt.Sprintf(format, args...)
		r.progress.skip(r.opts.Count - len(cells[i].Runs))
		if servers[i] != nil {
			servers[i].stop()
		}
	}
	for i, p := range ps {
		cells[i] = r.newCell(sc, p)
		srv, params, err := r.startChecked(sc, p)
		if srv != nil {
			servers[i] = srv
			r.track(srv, true)
		}
		cells[i].TLS = params
		var unsup *unsupportedError
		if errors.As(err, &unsup) {
			cells[i].Status, cells[i].Reason = statusSkipped, unsup.reason
			r.progress.skip(r.opts.Count)
		} else if err != nil {
			fail(i, "%v", err)
		}
	}
	for _, s := range runOrder(len(ps), r.opts.Count) {
		c, srv := &cells[s.Peer], servers[s.Peer]
		if c.Status != statusOK {
			continue
		}
		r.progress.run(sc.Name, c.Peer, s.Rep+1, r.opts.Count)
		run, err := r.measure(sc, c, srv)
		if aerr := srv.alive(); aerr != nil {
			err = aerr
		}
		if err != nil {
			fail(s.Peer, "run %d: %v", s.Rep+1, err)
			continue
		}
		run.Rep = s.Rep + 1
		c.Runs = append(c.Runs, run)
		r.progress.runDone()
	}
	for i := range cells {
		c := &cells[i]
		if c.Status == statusOK {
			// VmHWM: the server's own peak over its check and every run
			// (the load generator is another process).
			if rss, err := peakRSS(servers[i].pid()); err == nil {
				c.PeakRSSKiB = rss
			}
			c.Median = medianRun(c.Runs)
			c.Saturated = c.Median.LoadgenCPUPct > saturationPct*float64(c.LoadgenCores)
		}
		r.progress.cellDone(*c)
	}
	return cells
}

// newCell is peer p's empty cell in scenario sc.
func (r *runner) newCell(sc Scenario, p *builtPeer) Cell {
	cell := Cell{Scenario: sc.Name, Peer: p.Name, Status: statusOK, Tool: "loadgen", LoadgenCores: 1}
	if sc.Loops > 1 {
		cell.LoadgenCores = sc.Loops
	}
	if r.useWrk(sc) {
		cell.Tool = "wrk"
	}
	return cell
}

func (r *runner) useWrk(sc Scenario) bool {
	return sc.Wrk && !sc.Handshake && r.wrk != "" && sc.Loops <= 1 && wholeSeconds(r.opts.Duration)
}

// cpus returns where the server and the load generator of sc run (-1:
// unpinned) and the server's loop count.
func (r *runner) cpus(sc Scenario) (server, load, loops int) {
	if sc.Loops > 1 {
		return -1, -1, sc.Loops
	}
	return r.serverCPU, r.loadCPU, 1
}

// startChecked starts peer p's server for sc on a fresh port and checks it
// answers correctly; in https it returns what the check's handshakes
// negotiated. With an error, the server (if it started) is returned too,
// for the caller to stop; an *unsupportedError means the peer cannot take
// part.
func (r *runner) startChecked(sc Scenario, p *builtPeer) (*server, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", fmt.Errorf("no free port: %v", err)
	}
	serverCPU, _, loops := r.cpus(sc)
	argv, env := p.launch(sc.mode(), addr, loops)
	if sc.Kind == "https" {
		if r.tls.Cert == "" {
			return nil, "", errors.New("no TLS certificate for the https scenarios")
		}
		argv = append(argv, "-tls-cert", r.tls.Cert, "-tls-key", r.tls.Key)
	}
	srv, err := startServer(argv, env, addr, serverCPU)
	if err != nil {
		return nil, "", fmt.Errorf("start: %w", err)
	}
	res, err := check(sc, addr, r.tls.Cert)
	if err != nil {
		return srv, res.TLS, fmt.Errorf("correctness check: %v", err)
	}
	return srv, res.TLS, nil
}

// measure times one run of the server of cell c.
func (r *runner) measure(sc Scenario, c *Cell, srv *server) (Run, error) {
	_, loadCPU, _ := r.cpus(sc)
	if c.Tool == "wrk" {
		return r.measureWrk(sc, srv, loadCPU)
	}
	return r.measureLoadgen(sc, srv, loadCPU)
}

// check runs a few verified operations before anything is timed, so that a
// peer answering wrongly is reported as failed rather than fast. In https
// the client verifies the server's certificate against ca (the timed runs
// do not, like wrk), and fails on anything but a full TLS 1.3 handshake.
func check(sc Scenario, addr, ca string) (LoadResult, error) {
	cfg := LoadConfig{Addr: addr, Conns: min(sc.Conns, 8), Duration: 10 * time.Second}
	switch sc.Kind {
	case "echo":
		cfg.Mode, cfg.Size, cfg.MaxOps = "echo", sc.Size, 20
	case "https":
		cfg.Mode, cfg.Handshake, cfg.CAFile, cfg.MaxOps, cfg.Body = "https", sc.Handshake, ca, 2, helloBodyText
	default:
		cfg.Mode, cfg.Depth, cfg.MaxOps, cfg.Body = "http", sc.Depth, 2*int64(max(sc.Depth, 1)), helloBodyText
	}
	return runLoad(cfg)
}

func (r *runner) measureLoadgen(sc Scenario, srv *server, cpu int) (Run, error) {
	cfg := LoadConfig{
		Mode: "echo", Addr: srv.addr, Conns: sc.Conns, Size: sc.Size, Depth: sc.Depth,
		Workers: max(sc.Loops, 1), Warmup: r.opts.Warmup, Duration: r.opts.Duration,
		ServerPID: srv.pid(),
	}
	switch sc.Kind {
	case "http":
		cfg.Mode, cfg.Body = "http", helloBodyText
	case "https":
		cfg.Mode, cfg.Handshake, cfg.Body = "https", sc.Handshake, helloBodyText
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
// its connection setup to the window: well under 1% in plain HTTP. Over TLS
// the setup is 100 full handshakes, several percent of a 1 s window (tens of
// percent on a busy machine), and different per TLS library, so there the
// window is the difference of two timed runs, of 1 s and of 1 s plus the
// duration: both open and close their connections alike, and the
// difference is steady keep-alive traffic alone.
func (r *runner) measureWrk(sc Scenario, srv *server, cpu int) (Run, error) {
	url := "http://" + srv.addr + "/"
	if sc.Kind == "https" {
		url = "https://" + srv.addr + "/" // wrk does not verify the certificate
	}
	args := func(d time.Duration) []string {
		secs := int(math.Ceil(d.Seconds()))
		return []string{r.wrk, "-t1", "-c" + strconv.Itoa(sc.Conns), "-d" + strconv.Itoa(secs) + "s", "--latency", url}
	}
	limit := r.opts.Warmup + 2*r.opts.Duration + 60*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if r.opts.Warmup > 0 {
		if _, _, err := runChild(ctx, cpu, args(r.opts.Warmup), nil); err != nil {
			return Run{}, fmt.Errorf("wrk warm-up: %v", err)
		}
	}
	if sc.Kind != "https" {
		w, err := r.wrkOnce(ctx, cpu, srv, args(r.opts.Duration))
		if err != nil {
			return Run{}, err
		}
		return w.run(), nil
	}
	short, err := r.wrkOnce(ctx, cpu, srv, args(time.Second))
	if err != nil {
		return Run{}, err
	}
	long, err := r.wrkOnce(ctx, cpu, srv, args(time.Second+r.opts.Duration))
	if err != nil {
		return Run{}, err
	}
	return long.minus(short)
}

// wrkTimed is one timed wrk run with the CPU times around it.
type wrkTimed struct {
	wrkResult
	serverCPU float64 // seconds, over the run
	selfCPU   float64 // wrk's own
	wall      float64 // seconds
}

func (r *runner) wrkOnce(ctx context.Context, cpu int, srv *server, argv []string) (wrkTimed, error) {
	before, err := procCPU(srv.pid())
	if err != nil {
		return wrkTimed{}, err
	}
	start := time.Now()
	out, ps, err := runChild(ctx, cpu, argv, nil)
	wall := time.Since(start).Seconds()
	after, cerr := procCPU(srv.pid())
	if err != nil {
		return wrkTimed{}, fmt.Errorf("wrk: %v", err)
	}
	if cerr != nil {
		return wrkTimed{}, cerr
	}
	w, err := parseWrk(out)
	if err != nil {
		return wrkTimed{}, err
	}
	if w.Errors != "" {
		return wrkTimed{}, fmt.Errorf("wrk: %s", w.Errors)
	}
	return wrkTimed{wrkResult: w, serverCPU: after - before, selfCPU: (ps.UserTime() + ps.SystemTime()).Seconds(), wall: wall}, nil
}

func (w wrkTimed) run() Run {
	return Run{
		Ops: w.Requests, Seconds: w.Seconds, OpsPerSec: float64(w.Requests) / w.Seconds,
		P50us: float64(w.P50) / 1e3, P99us: float64(w.P99) / 1e3,
		ServerCPUSec: w.serverCPU, CPUPerOpUs: w.serverCPU / float64(w.Requests) * 1e6,
		LoadgenCPUPct: w.selfCPU / w.wall * 100,
	}
}

// minus is the run of w beyond short (the same connections opened and
// closed in both): requests, seconds and CPU times are differences;
// latency is the longer run's.
func (w wrkTimed) minus(short wrkTimed) (Run, error) {
	d := wrkTimed{
		wrkResult: wrkResult{Requests: w.Requests - short.Requests, Seconds: w.Seconds - short.Seconds, P50: w.P50, P99: w.P99},
		serverCPU: w.serverCPU - short.serverCPU, selfCPU: w.selfCPU - short.selfCPU, wall: w.wall - short.wall,
	}
	if d.Requests <= 0 || d.Seconds <= 0 || d.wall <= 0 || d.serverCPU < 0 {
		return Run{}, fmt.Errorf("wrk: the longer run (%d requests, %.3f s of server CPU in %.2f s) does not add to the shorter (%d, %.3f s in %.2f s)",
			w.Requests, w.serverCPU, w.Seconds, short.Requests, short.serverCPU, short.Seconds)
	}
	return d.run(), nil
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
