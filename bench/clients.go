//go:build linux

package main

// The HTTP-client scenarios (issue 10 C): the roles of the rest of the
// suite are turned around. A fixed C server (peers/cepoll in hello mode,
// or peers/client/bodyserver for large bodies) runs pinned to one CPU, and
// each client peer runs pinned to the other, keeping Scenario.Conns
// transfers in flight; the headline is the client's CPU per request. Every
// client peer takes the same flags and prints the same result line
// (peers/internal/clientrun):
//
//	requests=N errors=E cpu_us=C wall_us=W rss_kb_start=R0 rss_kb_end=R1 fds_start=F0 fds_end=F1
//
// In these cells Run.ServerCPUSec and Run.CPUPerOpUs are the client's (the
// measured process), Run.LoadgenCPUPct the fixed server's CPU over the run.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario kinds of the client scenarios: timed windows, and one long run
// by count whose RSS and fd count at both ends show growth.
const (
	clientKind     = "client"
	clientFlatKind = "client-flat"
)

func isClientKind(kind string) bool { return kind == clientKind || kind == clientFlatKind }

// The client peers the verdict compares: ours, the C libcurl loop (the
// physical limit for libcurl) and Go's net/http client.
const (
	curlPeer          = "ioloop-curl"
	curlReferencePeer = "curl-c"
	netHTTPClientPeer = "nethttp-client"
)

// Targets of issue 10 for the client scenarios.
const (
	// curlCTarget: client CPU per request within 10% of libcurl on a plain
	// C epoll + timerfd loop.
	curlCTarget = 1.10
	// flatRSSKiB: RSS growth over clientFlatRequests that still counts as
	// flat (the Go runtime settles its heap within a few MiB; a leak of 40
	// bytes per request would show as 4 MiB).
	flatRSSKiB = 4 << 10
	// clientFlatRequests is the flat scenario's request count.
	clientFlatRequests = 100_000
)

func clientScenarios() []Scenario {
	return []Scenario{
		{Name: "client-hello-100", Kind: clientKind, Conns: 100, Desc: "HTTP client: 100 concurrent keep-alive transfers of the hello response from the C epoll server"},
		{Name: "client-body-16m", Kind: clientKind, Conns: 8, Size: 16 << 20, Requests: 64, Discard: true, Desc: "HTTP client: 64 transfers of a 16 MiB body, 8 at a time, streamed and discarded"},
		{Name: "client-hello-100k", Kind: clientFlatKind, Conns: 100, Requests: clientFlatRequests, Desc: "HTTP client: 100,000 hello transfers, RSS and open fds at the start and the end"},
	}
}

// clientPeers are the client scenarios' peers.
func clientPeers() []Peer {
	both := []string{clientKind, clientFlatKind}
	return []Peer{
		{Name: curlPeer, Lang: "go", Ours: true, Kinds: both, Desc: "this project's curl package: libcurl's multi-socket interface on an ioloop loop (peers/client/curlgo); Response.Body, or OnBody for large bodies", Build: buildGoClient("curlgo")},
		{Name: curlReferencePeer, Lang: "c", Kinds: both, Desc: "libcurl's multi-socket interface on a plain C epoll + timerfd loop, one easy handle per slot re-added as is (the physical limit for libcurl)", Build: buildCurlC},
		{Name: netHTTPClientPeer, Lang: "go", Kinds: both, Desc: "Go net/http client, a goroutine per transfer, the idle pool sized to the concurrency; io.ReadAll, or io.Copy to io.Discard for large bodies", Build: buildGoClient("nethttp")},
		{Name: "tornado-curl", Lang: "python", Kinds: []string{clientKind}, Desc: "Tornado's CurlAsyncHTTPClient (pycurl), max_clients = the concurrency", Build: buildTornadoClient("curl")},
		{Name: "tornado-simple", Lang: "python", Kinds: []string{clientKind}, Desc: "Tornado's SimpleAsyncHTTPClient, max_clients = the concurrency", Build: buildTornadoClient("simple")},
	}
}

// clientLauncher ignores the server-shaped arguments: a client peer's
// command line is its binary; the runner appends the client flags.
func clientLauncher(argv, env []string) Launcher {
	return func(string, string, int) ([]string, []string) { return slices.Clone(argv), env }
}

func buildGoClient(name string) func(e *buildEnv) (Launcher, error) {
	return func(e *buildEnv) (Launcher, error) {
		bin := filepath.Join(e.out, "client-"+name)
		if err := e.goBuild(e.bench, bin, "./peers/client/"+name); err != nil {
			return nil, err
		}
		return clientLauncher([]string{bin}, nil), nil
	}
}

// libcurlFlags asks pkg-config how to build against libcurl.
func libcurlFlags(e *buildEnv) ([]string, error) {
	pc, err := exec.LookPath("pkg-config")
	if err != nil {
		return nil, skipf("pkg-config not installed (apt-get install pkg-config libcurl4-openssl-dev)")
	}
	out, err := e.run(e.bench, nil, pc, "--cflags", "--libs", "libcurl")
	if err != nil {
		return nil, skipf("libcurl not found by pkg-config (apt-get install libcurl4-openssl-dev): %s", firstLine(out, err))
	}
	return strings.Fields(string(out)), nil
}

func buildCurlC(e *buildEnv) (Launcher, error) {
	cc, err := lookCC()
	if err != nil {
		return nil, err
	}
	flags, err := libcurlFlags(e)
	if err != nil {
		return nil, err
	}
	src := filepath.Join(e.bench, "peers", "client", "curlc", "client.c")
	bin := filepath.Join(e.out, "client-curlc")
	if newer(bin, src) {
		args := append([]string{"-O2", "-Wall", "-o", bin, src}, flags...)
		if out, err := e.run(e.bench, nil, cc, args...); err != nil {
			return nil, skipf("%s client.c: %s", cc, firstLine(out, err))
		}
	}
	// The large-body server the clients are measured against, built here
	// too so that -prepare leaves nothing to compile at run time.
	if _, err := buildBodyServer(e, 0); err != nil {
		return nil, err
	}
	return clientLauncher([]string{bin}, nil), nil
}

// buildTornadoClient finds a Python 3 that imports tornado (and pycurl
// for CurlAsyncHTTPClient), as buildTornado does for the server.
func buildTornadoClient(impl string) func(e *buildEnv) (Launcher, error) {
	imports := "import tornado"
	pkgs := "python3-tornado"
	if impl == "curl" {
		imports += ", pycurl"
		pkgs += " python3-pycurl"
	}
	return func(e *buildEnv) (Launcher, error) {
		var tried []string
		for _, py := range []string{"python3", "/usr/bin/python3"} {
			p, err := exec.LookPath(py)
			if err != nil || slices.Contains(tried, p) {
				continue
			}
			tried = append(tried, p)
			if exec.Command(p, "-c", imports).Run() == nil {
				script := filepath.Join(e.bench, "peers", "client", "tornado", "client.py")
				return clientLauncher([]string{p, script, "-impl", impl}, []string{"PYTHONDONTWRITEBYTECODE=1"}), nil
			}
		}
		if len(tried) == 0 {
			return nil, skipf("no python3 on PATH")
		}
		return nil, skipf("%q fails in %s (apt-get install %s)", imports, strings.Join(tried, " or "), pkgs)
	}
}

// clientRequests is how many requests a count-based scenario measures:
// a tenth in -quick runs.
func (r *runner) clientRequests(sc Scenario) int64 {
	if r.opts.Quick {
		return max(sc.Requests/10, 8)
	}
	return sc.Requests
}

// clientReps is how many runs each peer gets: the flat scenario's one long
// run is enough (it is a growth check, not a timing).
func (r *runner) clientReps(sc Scenario) int {
	if sc.Kind == clientFlatKind {
		return 1
	}
	return r.opts.Count
}

// runClientScenario measures the client peers ps in sc against one fixed
// server, interleaved like the server scenarios (see runOrder).
func (r *runner) runClientScenario(sc Scenario, ps []*builtPeer) []Cell {
	reps := r.clientReps(sc)
	r.progress.skip(len(ps) * (r.opts.Count - reps)) // the runs the estimate counted and that will not happen
	cells := make([]Cell, len(ps))
	for i, p := range ps {
		cells[i] = Cell{Scenario: sc.Name, Peer: p.Name, Status: statusOK, Tool: "client", LoadgenCores: 1}
	}
	srv, url, err := r.startClientServer(sc)
	if err != nil {
		for i := range cells {
			cells[i].Status, cells[i].Reason = statusFailed, "the fixed server: "+err.Error()
			r.progress.skip(reps)
			r.clientCellDone(sc, cells[i])
		}
		return cells
	}
	r.track(srv, true)
	defer func() {
		srv.stop()
		r.track(srv, false)
	}()
	for _, s := range runOrder(len(ps), reps) {
		c := &cells[s.Peer]
		if c.Status != statusOK {
			continue
		}
		r.progress.run(sc.Name, c.Peer, s.Rep+1, reps)
		run, err := r.measureClient(sc, ps[s.Peer], srv, url)
		if aerr := srv.alive(); aerr != nil && err == nil {
			err = fmt.Errorf("the fixed server: %v", aerr)
		}
		if err != nil {
			c.Status, c.Reason = statusFailed, fmt.Sprintf("run %d: %v", s.Rep+1, err)
			r.progress.skip(reps - len(c.Runs))
			continue
		}
		run.Rep = s.Rep + 1
		c.Runs = append(c.Runs, run)
		r.progress.runDone()
	}
	for i := range cells {
		c := &cells[i]
		if c.Status == statusOK {
			c.Median = medianRun(c.Runs)
			for _, run := range c.Runs {
				c.PeakRSSKiB = max(c.PeakRSSKiB, run.RSSEndKiB)
			}
		}
		r.clientCellDone(sc, *c)
	}
	return cells
}

func (r *runner) clientCellDone(sc Scenario, c Cell) {
	switch c.Status {
	case statusOK:
		r.progress.logf("    %s / %s: %s requests/s, client %s CPU/request, server at %.0f%% of its CPU, RSS %s",
			sc.Name, c.Peer, fmtRate(c.Median.OpsPerSec), fmtMicros(c.Median.CPUPerOpUs), c.Median.LoadgenCPUPct, fmtKiB(c.PeakRSSKiB))
	default:
		r.progress.cellDone(c)
	}
}

// startClientServer builds (if needed), starts and checks the fixed server
// of sc, pinned to the CPU the clients do not use. It returns its URL.
func (r *runner) startClientServer(sc Scenario) (*server, string, error) {
	_, benchDir, err := locateDirs()
	if err != nil {
		return nil, "", err
	}
	e := &buildEnv{bench: benchDir, out: filepath.Join(benchDir, ".build")}
	var launch Launcher
	if sc.Size == 0 {
		launch, err = buildC(referencePeer, nil)(e)
	} else {
		launch, err = buildBodyServer(e, sc.Size)
	}
	if err != nil {
		return nil, "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", fmt.Errorf("no free port: %v", err)
	}
	argv, env := launch("hello", addr, 1)
	srv, err := startServer(argv, env, addr, r.loadCPU)
	if err != nil {
		return nil, "", err
	}
	url := "http://" + addr + "/"
	if err := checkClientServer(url, sc.Size); err != nil {
		srv.stop()
		return nil, "", fmt.Errorf("correctness check: %v", err)
	}
	return srv, url, nil
}

func buildBodyServer(e *buildEnv, size int) (Launcher, error) {
	cc, err := lookCC()
	if err != nil {
		return nil, err
	}
	src := filepath.Join(e.bench, "peers", "client", "bodyserver", "server.c")
	bin := filepath.Join(e.out, "bodyserver")
	if newer(bin, src) {
		if out, err := e.run(e.bench, nil, cc, "-O2", "-Wall", "-o", bin, src); err != nil {
			return nil, skipf("%s bodyserver/server.c: %s", cc, firstLine(out, err))
		}
	}
	return func(_, addr string, _ int) ([]string, []string) {
		return []string{bin, "-addr", addr, "-size", strconv.Itoa(size)}, nil
	}, nil
}

// checkClientServer fetches the fixed server's response twice on one
// connection and checks it.
func checkClientServer(url string, size int) error {
	client := &http.Client{Timeout: 30 * time.Second}
	for range 2 {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want := int64(len(helloBodyText))
		if size > 0 {
			want = int64(size)
		}
		switch {
		case err != nil:
			return err
		case resp.StatusCode != 200 || n != want:
			return fmt.Errorf("status %d with %d body bytes, want 200 with %d", resp.StatusCode, n, want)
		}
	}
	return nil
}

var clientResultLine = regexp.MustCompile(`requests=(\d+) errors=(\d+) cpu_us=(\d+) wall_us=(\d+) rss_kb_start=(-?\d+) rss_kb_end=(-?\d+) fds_start=(-?\d+) fds_end=(-?\d+)`)

// minClientWarmup is the shortest warm-up of a client run: each run is a
// new client process, which opens its connections and (for Go and Python)
// warms its runtime up in the first 100 ms or so; -quick's 50 ms would
// measure that.
const minClientWarmup = 250 * time.Millisecond

// measureClient runs client peer p once against srv and reads its result.
func (r *runner) measureClient(sc Scenario, p *builtPeer, srv *server, url string) (Run, error) {
	warmup := max(r.opts.Warmup, minClientWarmup)
	argv, env := p.launch("client", "", 0)
	argv = append(argv, "-url", url, "-c", strconv.Itoa(sc.Conns),
		"-warmup-ms", strconv.FormatInt(warmup.Milliseconds(), 10))
	limit := warmup + r.opts.Duration + 60*time.Second
	if n := r.clientRequests(sc); n > 0 {
		argv = append(argv, "-n", strconv.FormatInt(n, 10))
		limit = warmup + 5*time.Minute
	} else {
		argv = append(argv, "-duration-ms", strconv.FormatInt(r.opts.Duration.Milliseconds(), 10))
	}
	if sc.Discard {
		argv = append(argv, "-body", "discard")
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	before, err := procCPU(srv.pid())
	if err != nil {
		return Run{}, err
	}
	start := time.Now()
	out, _, err := runChild(ctx, r.serverCPU, argv, env)
	wall := time.Since(start).Seconds()
	after, cerr := procCPU(srv.pid())
	if err != nil {
		return Run{}, fmt.Errorf("%s: %v", filepath.Base(argv[0]), err)
	}
	if cerr != nil {
		return Run{}, cerr
	}
	m := clientResultLine.FindSubmatch(out)
	if m == nil {
		return Run{}, fmt.Errorf("no result line in the client's output: %q", oneLine(string(out)))
	}
	v := make([]int64, len(m)-1)
	for i := range v {
		v[i], _ = strconv.ParseInt(string(m[i+1]), 10, 64)
	}
	reqs, errs, cpuUs, wallUs := v[0], v[1], v[2], v[3]
	switch {
	case reqs == 0:
		return Run{}, fmt.Errorf("no request completed in the window")
	case errs > 0:
		return Run{}, fmt.Errorf("%d of %d requests failed", errs, reqs)
	}
	secs := float64(wallUs) / 1e6
	return Run{
		Ops: reqs, Seconds: secs, OpsPerSec: float64(reqs) / secs,
		ServerCPUSec: float64(cpuUs) / 1e6, CPUPerOpUs: float64(cpuUs) / float64(reqs),
		LoadgenCPUPct: (after - before) / wall * 100,
		RSSStartKiB:   v[4], RSSEndKiB: v[5], FDsStart: int(v[6]), FDsEnd: int(v[7]),
	}, nil
}

// clientRows are the client scenarios of the report that have cells.
func clientRows(r *Report) []Scenario {
	var scs []Scenario
	for _, sc := range r.Scenarios {
		if isClientKind(sc.Kind) && slices.ContainsFunc(r.Cells, func(c Cell) bool { return c.Scenario == sc.Name }) {
			scs = append(scs, sc)
		}
	}
	return scs
}

// clientTargets checks the targets of issue 10 for ioloop-curl: client
// CPU per request ≤ curlCTarget × the C libcurl loop's and below net/http's
// in every timed client scenario, RSS and fds flat over 100,000 requests.
func clientTargets(r *Report) []TargetCheck {
	var timed []Scenario
	var flat *Scenario
	for _, sc := range clientRows(r) {
		if sc.Kind == clientKind {
			timed = append(timed, sc)
		} else {
			flat = &sc
		}
	}
	vs := func(peer, target string, limit float64, strict bool, word string) TargetCheck {
		t := TargetCheck{Issue: 10, Target: target}
		var good, bad, unchecked []string
		for _, sc := range timed {
			a, b := r.cell(sc.Name, curlPeer), r.cell(sc.Name, peer)
			switch {
			case a == nil || a.Status != statusOK:
				bad = append(bad, sc.Name+" not measured")
			case b == nil || b.Status != statusOK:
				unchecked = append(unchecked, sc.Name)
			default:
				q := pairedRatio(a, b)
				s := fmt.Sprintf("%s %s", sc.Name, fmtX(q.Value))
				if q.Value < limit || !strict && q.Value == limit {
					good = append(good, s)
				} else {
					bad = append(bad, s)
				}
			}
		}
		t = tally(t, len(good), bad, unchecked, nil, word, "no "+peer+" result")
		if len(good) > 0 {
			t.Measured += " (" + strings.Join(good, ", ") + ")"
		}
		return t
	}
	ts := []TargetCheck{
		vs(curlReferencePeer, fmt.Sprintf("client CPU/request ≤ %.2f× libcurl on a C epoll loop (%s)", curlCTarget, curlReferencePeer), curlCTarget, false, "within"),
		vs(netHTTPClientPeer, "client CPU/request below Go net/http's client", 1, true, "below"),
	}
	flatT := TargetCheck{Issue: 10, Target: fmt.Sprintf("RSS (growth ≤ %s) and open fds flat over %s requests",
		fmtKiB(flatRSSKiB), fmtNum(clientFlatRequests))}
	return append(ts, flatTarget(r, flatT, flat))
}

// flatTarget checks ioloop-curl's run of the flat scenario.
func flatTarget(r *Report, t TargetCheck, flat *Scenario) TargetCheck {
	if flat == nil {
		t.Status, t.Measured = statusNotChecked, "not run"
		return t
	}
	c := r.cell(flat.Name, curlPeer)
	if c == nil || c.Status != statusOK || len(c.Runs) == 0 {
		t.Status, t.Measured = statusNotMet, "not measured"
		return t
	}
	run := c.Runs[0]
	t.Measured = fmt.Sprintf("%s requests: RSS %s → %s, fds %d → %d", fmtNum(float64(run.Ops)),
		fmtKiB(run.RSSStartKiB), fmtKiB(run.RSSEndKiB), run.FDsStart, run.FDsEnd)
	switch {
	case run.Ops < clientFlatRequests:
		t.Status, t.Measured = statusNotChecked, t.Measured+" (a -quick run: fewer than the target's)"
	case run.RSSEndKiB-run.RSSStartKiB <= flatRSSKiB && run.FDsEnd <= run.FDsStart:
		t.Status = statusMet
	default:
		t.Status = statusNotMet
	}
	return t
}
