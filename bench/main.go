//go:build linux

// Command bench is ioloop's benchmark comparison: it builds every peer
// server (ioloop's like-for-like peer and examples/hello, C epoll, libevent,
// Go net, gnet, evio, nbio, Tornado), starts each as its own process on
// loopback, checks that it answers correctly, times the peers of each
// scenario interleaved (every peer once per repetition) under a load
// generator pinned to the other CPU, and prints a verdict against the
// targets of issue 11 followed by markdown tables (stdout), progress
// (stderr), and optionally the raw results (-json) and a bar chart (-svg).
//
//	go run ./bench            # the default suite, a few minutes on 2 cores
//	go run ./bench -quick     # smoke run, under a minute (CI)
//	go run ./bench -only echo-64,ioloop,cepoll -count 5
//	go run ./bench -prepare   # build every peer and exit (Dockerfile build stage)
//	go run ./bench -list
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(mainErr())
}

func mainErr() int {
	var opts Options
	var only string
	var prepare, list bool
	var loadgen string
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.BoolVar(&opts.Quick, "quick", false, "smoke run: short windows, one run each (CI)")
	fs.StringVar(&only, "only", "", "comma list of scenario and/or peer names to run (see -list)")
	fs.DurationVar(&opts.Duration, "duration", time.Second, "timed window of each run")
	fs.DurationVar(&opts.Warmup, "warmup", 500*time.Millisecond, "warm-up before each timed window")
	fs.IntVar(&opts.Count, "count", 3, "runs per peer and scenario (the median is reported)")
	fs.IntVar(&opts.Conns, "conns", 0, "override the connection count of every network scenario")
	fs.IntVar(&opts.Size, "size", 0, "override the message size (bytes) of every echo scenario")
	fs.StringVar(&opts.JSON, "json", "", "write the raw results to this file")
	fs.StringVar(&opts.SVG, "svg", "bench-results.svg", "write the bar chart to this file (\"\" for none)")
	fs.StringVar(&opts.BenchTime, "benchtime", "", "-benchtime for the micro-benchmarks (default go test's)")
	fs.BoolVar(&prepare, "prepare", false, "build every peer into bench/.build and exit")
	fs.BoolVar(&list, "list", false, "list scenarios and peers and exit")
	fs.StringVar(&loadgen, "loadgen", "", "internal: run as the load generator with this JSON config")
	_ = fs.Parse(os.Args[1:])
	if loadgen != "" {
		return loadgenMain(loadgen)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if opts.Quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			opts.Duration = 200 * time.Millisecond
		}
		if !set["warmup"] {
			opts.Warmup = 50 * time.Millisecond
		}
		if !set["count"] {
			opts.Count = 1
		}
		if !set["benchtime"] {
			opts.BenchTime = "100ms"
		}
	}
	if opts.Count < 1 || opts.Duration <= 0 || opts.Warmup < 0 {
		fmt.Fprintln(os.Stderr, "bench: -count must be >= 1, -duration > 0, -warmup >= 0")
		return 2
	}

	scenarios := defaultScenarios()
	allPeers := peers()
	if only != "" {
		opts.Only = strings.Split(only, ",")
		var err error
		if scenarios, allPeers, err = selectOnly(opts.Only, scenarios, allPeers); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
	}
	for i := range scenarios {
		scenarios[i] = opts.applyOverrides(scenarios[i])
	}
	if list {
		printList(scenarios, allPeers)
		return 0
	}

	root, benchDir, err := locateDirs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	env := &buildEnv{root: root, bench: benchDir, out: filepath.Join(benchDir, ".build"), goBin: goBinary()}
	if err := os.MkdirAll(env.out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	built, infos := buildAll(env, allPeers)
	if prepare {
		return prepareMicro(env)
	}
	return runSuite(opts, env, scenarios, built, infos)
}

// buildAll builds the selected peers, reporting each on stderr.
func buildAll(env *buildEnv, ps []Peer) ([]*builtPeer, []PeerInfo) {
	var built []*builtPeer
	var infos []PeerInfo
	for _, p := range ps {
		start := time.Now()
		launch, err := p.Build(env)
		info := PeerInfo{Name: p.Name, Desc: p.Desc, Lang: p.Lang, Ours: p.Ours, Status: statusOK}
		if err != nil {
			info.Status, info.Reason = "skipped", oneLine(err.Error())
			fmt.Fprintf(os.Stderr, "build %-9s skipped: %s\n", p.Name, info.Reason)
		} else {
			built = append(built, &builtPeer{Peer: p, launch: launch})
			fmt.Fprintf(os.Stderr, "build %-9s ok (%.1fs)\n", p.Name, time.Since(start).Seconds())
		}
		infos = append(infos, info)
	}
	return built, infos
}

// prepareMicro compiles the root package's tests too, so that a run stage
// without network has everything the micro-benchmarks need.
func prepareMicro(env *buildEnv) int {
	cmd := exec.Command(env.goBin, "test", "-c", "-o", filepath.Join(env.out, "ioloop.test"), "github.com/ioloop-go/ioloop")
	cmd.Dir = env.root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build micro     skipped: go test -c: %s\n", firstLine(out, err))
	} else {
		fmt.Fprintln(os.Stderr, "build micro     ok")
	}
	return 0
}

func runSuite(opts Options, env *buildEnv, scenarios []Scenario, built []*builtPeer, infos []PeerInfo) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: cannot find my own binary to run the load generator:", err)
		return 1
	}
	r := &runner{opts: opts, self: self, wrk: lookWrk()}
	r.serverCPU, r.loadCPU = pickCPUs()
	tlsDir := ""
	if slices.ContainsFunc(scenarios, func(sc Scenario) bool { return sc.Kind == "https" }) {
		// One certificate for every TLS peer of this suite, removed at the end.
		if tlsDir, r.tls, err = newTLSDir(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer os.RemoveAll(tlsDir)
	}
	rep := &Report{Machine: machineInfo(r.wrk), Options: opts, Started: time.Now(), Scenarios: scenarios, Peers: infos}
	rep.Machine.Pinned = r.serverCPU >= 0

	type job struct {
		sc Scenario
		ps []*builtPeer
	}
	var jobs []job
	runs := 0
	micro := false
	for _, sc := range scenarios {
		if sc.Kind == "micro" {
			micro = true
			continue
		}
		var ps []*builtPeer
		for _, p := range built {
			if p.takesPart(sc) {
				ps = append(ps, p)
			}
		}
		if len(ps) > 0 {
			jobs = append(jobs, job{sc, ps})
			runs += len(ps) * opts.Count
		}
	}
	// A run is its warm-up and window plus the load generator's start and
	// connections; each server's start and check adds about 0.5 s per cell.
	perRun := opts.Warmup + opts.Duration + 150*time.Millisecond + 500*time.Millisecond/time.Duration(opts.Count)
	microLines := 0
	if micro {
		microLines = microResultsPerCount * opts.Count
	}
	r.progress = newProgress(os.Stderr, runs, perRun, microLines, microPerLine(opts.BenchTime))
	if !rep.Machine.Pinned {
		r.progress.logf("bench: fewer than 2 CPUs: server and load generator are not pinned")
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\nbench: %v: stopping the running servers\n", s)
		r.stopAll()
		if tlsDir != "" {
			os.RemoveAll(tlsDir)
		}
		os.Exit(130)
	}()

	oursFailed := false
	for _, j := range jobs {
		for _, c := range r.runScenario(j.sc, j.ps) {
			rep.Cells = append(rep.Cells, c)
			if c.Status == statusFailed && slices.ContainsFunc(j.ps, func(p *builtPeer) bool { return p.Name == c.Peer && p.Ours }) {
				oursFailed = true
			}
		}
	}
	if micro {
		r.progress.microStep("go test -bench " + microPattern)
		ms, _, err := runMicro(env.goBin, env.root, opts.BenchTime, opts.Count, r.progress.microResult)
		if err != nil {
			rep.MicroError = oneLine(err.Error())
			r.progress.logf("    micro: skipped: %s", rep.MicroError)
		}
		rep.Micro = ms
		r.progress.microDone()
	}
	rep.Finished = time.Now()
	signal.Stop(sig)
	sum := summarize(rep)
	rep.Summary = &sum

	status := 0
	w := bufio.NewWriter(os.Stdout)
	if err := writeTable(w, rep); err != nil || w.Flush() != nil {
		status = 1
	}
	if opts.JSON != "" {
		if err := writeFile(opts.JSON, func(f *os.File) error { return writeJSON(f, rep) }); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			status = 1
		}
	}
	if opts.SVG != "" {
		if err := writeFile(opts.SVG, func(f *os.File) error { return writeSVG(f, rep) }); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			status = 1
		} else {
			fmt.Fprintf(os.Stderr, "bench: chart written to %s\n", opts.SVG)
		}
	}
	count := map[string]int{}
	for _, c := range rep.Cells {
		count[c.Status]++
	}
	skipped := ""
	if n := count[statusSkipped]; n > 0 {
		skipped = fmt.Sprintf(", %d skipped", n)
	}
	fmt.Fprintf(os.Stderr, "bench: %d cells ok, %d failed%s, in %s\n", count[statusOK], count[statusFailed], skipped, fmtClock(rep.Finished.Sub(rep.Started)))
	if oursFailed {
		// The other peers' failures are reported; ours fail the run, so CI notices.
		fmt.Fprintln(os.Stderr, "bench: FAIL: an ioloop row failed in at least one scenario")
		status = 1
	}
	return status
}

func writeJSON(f *os.File, rep *Report) error {
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func writeFile(name string, write func(*os.File) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return f.Close()
}

// selectOnly keeps the scenarios and peers named in only. Naming only
// scenarios keeps every peer and vice versa.
func selectOnly(only []string, scs []Scenario, ps []Peer) ([]Scenario, []Peer, error) {
	var wantS, wantP []string
	for _, n := range only {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case slices.ContainsFunc(scs, func(s Scenario) bool { return s.Name == n }):
			wantS = append(wantS, n)
		case slices.ContainsFunc(ps, func(p Peer) bool { return p.Name == n }):
			wantP = append(wantP, n)
		default:
			return nil, nil, fmt.Errorf("-only: %q is neither a scenario nor a peer (see -list)", n)
		}
	}
	if len(wantS) > 0 {
		scs = slices.DeleteFunc(scs, func(s Scenario) bool { return !slices.Contains(wantS, s.Name) })
	}
	if len(wantP) > 0 {
		ps = slices.DeleteFunc(ps, func(p Peer) bool { return !slices.Contains(wantP, p.Name) })
	}
	return scs, ps, nil
}

func printList(scs []Scenario, ps []Peer) {
	fmt.Println("scenarios:")
	for _, s := range scs {
		fmt.Printf("  %-20s %s\n", s.Name, s.Desc)
	}
	fmt.Println("peers:")
	for _, p := range ps {
		var tags []string
		switch k := p.kinds(); {
		case slices.Equal(k, plainKinds):
		case slices.Equal(k, allKinds):
			tags = append(tags, "TLS too")
		default:
			tags = append(tags, strings.Join(k, ",")+" only")
		}
		if p.Multi {
			tags = append(tags, "multi-loop")
		}
		tag := ""
		if len(tags) > 0 {
			tag = " [" + strings.Join(tags, "; ") + "]"
		}
		fmt.Printf("  %-20s %s%s\n", p.Name, p.Desc, tag)
	}
}

// locateDirs finds the repository and bench/: from this source file's path
// under `go run`, else from the working directory (the repository or bench/).
func locateDirs() (root, bench string, err error) {
	var cands []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		cands = append(cands, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		cands = append(cands, filepath.Join(wd, "bench"), wd)
	}
	for _, dir := range cands {
		if moduleOf(dir) == "github.com/ioloop-go/ioloop/bench" &&
			moduleOf(filepath.Dir(dir)) == "github.com/ioloop-go/ioloop" {
			return filepath.Dir(dir), dir, nil
		}
	}
	return "", "", errors.New("run me from the repository or its bench/ directory (go run ./bench)")
}

func moduleOf(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.TrimSpace(m)
		}
	}
	return ""
}

// goBinary is the go command that runs us (go run and go test put their
// own GOROOT/bin first on PATH), or for a built binary the one on PATH.
// runtime.GOROOT, used before, is deprecated: it names the build
// machine's toolchain, which may not exist where the binary runs.
func goBinary() string {
	if g, err := exec.LookPath("go"); err == nil {
		return g
	}
	return "go"
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
