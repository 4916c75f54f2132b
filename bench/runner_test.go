//go:build linux

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testRunner runs cells with this test binary as load generator and server.
func testRunner(t *testing.T, count int) (*runner, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{
		opts:     Options{Count: count, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond},
		self:     self,
		progress: newProgress(io.Discard, 4, time.Second, 0, 0),
	}
	// Unpinned: a test must not depend on what else runs on one CPU (a
	// benchmark pinned there by someone else starves a pinned server for
	// hundreds of ms on a shared 2-CPU VM). Pinning has its own test.
	r.serverCPU, r.loadCPU = -1, -1
	return r, self
}

func testPeer(self, name, modeOverride string) *builtPeer {
	return &builtPeer{Peer: Peer{Name: name}, launch: func(mode, addr string, loops int) ([]string, []string) {
		if modeOverride != "" {
			mode = modeOverride
		}
		return []string{self, "-addr", addr, "-mode", mode}, []string{"BENCH_TEST_ROLE=server"}
	}}
}

func TestRunScenarioEndToEnd(t *testing.T) {
	r, self := testRunner(t, 2)
	p := testPeer(self, "testpeer", "")
	for _, sc := range []Scenario{
		{Name: "echo-4", Kind: "echo", Conns: 4, Size: 64},
		{Name: "http-4", Kind: "http", Conns: 4, Depth: 4},
	} {
		cells := r.runScenario(sc, []*builtPeer{p})
		if len(cells) != 1 {
			t.Fatalf("%s: %d cells", sc.Name, len(cells))
		}
		c := cells[0]
		if c.Status != "ok" {
			t.Fatalf("%s: %s: %s", sc.Name, c.Status, c.Reason)
		}
		if len(c.Runs) != 2 || c.Tool != "loadgen" {
			t.Errorf("%s: %d runs with %s, want 2 with the built-in load generator", sc.Name, len(c.Runs), c.Tool)
		}
		for i, run := range c.Runs {
			if run.Rep != i+1 {
				t.Errorf("%s run %d: rep %d", sc.Name, i, run.Rep)
			}
			if run.Ops <= 0 || run.Seconds != 0.2 || run.OpsPerSec != float64(run.Ops)/0.2 {
				t.Errorf("%s run %d: %d ops in %vs = %v/s", sc.Name, i, run.Ops, run.Seconds, run.OpsPerSec)
			}
			if run.P50us <= 0 || run.P99us < run.P50us || run.LoadgenCPUPct <= 0 {
				t.Errorf("%s run %d: p50 %v p99 %v loadgen %v%%", sc.Name, i, run.P50us, run.P99us, run.LoadgenCPUPct)
			}
			if run.ServerCPUSec < 0 || run.CPUPerOpUs != run.ServerCPUSec/float64(run.Ops)*1e6 {
				t.Errorf("%s run %d: server CPU %vs, %v µs/op", sc.Name, i, run.ServerCPUSec, run.CPUPerOpUs)
			}
		}
		if c.PeakRSSKiB <= 0 {
			t.Errorf("%s: peak RSS %d KiB", sc.Name, c.PeakRSSKiB)
		}
	}
}

// The peers of a scenario run round-robin, repetition by repetition, every
// server staying up between its runs; a peer that fails is left out of the
// later repetitions without stopping the others.
func TestRunScenarioInterleaves(t *testing.T) {
	r, self := testRunner(t, 3)
	var log bytes.Buffer
	r.progress = newProgress(&log, 9, time.Second, 0, 0)
	ps := []*builtPeer{testPeer(self, "a", ""), testPeer(self, "b", ""), testPeer(self, "c", "")}
	// b's server serves the suite's probe for its port (1 connection), its
	// check (2) and its first run (2), and exits on the next: its second
	// run fails.
	ps[1].launch = func(mode, addr string, loops int) ([]string, []string) {
		return []string{self, "-addr", addr, "-mode", "echo", "-exit-after-conns", "5"}, []string{"BENCH_TEST_ROLE=server"}
	}
	cells := r.runScenario(Scenario{Name: "echo-2", Kind: "echo", Conns: 2, Size: 64}, ps)
	var order []string
	for _, line := range strings.Split(log.String(), "\n") {
		if _, run, ok := strings.Cut(line, "] echo-2 / "); ok {
			order = append(order, run)
		}
	}
	want := []string{"a: run 1 of 3", "b: run 1 of 3", "c: run 1 of 3", "a: run 2 of 3", "b: run 2 of 3", "c: run 2 of 3", "a: run 3 of 3", "c: run 3 of 3"}
	if strings.Join(order, ", ") != strings.Join(want, ", ") {
		t.Errorf("run order:\n got %v\nwant %v", order, want)
	}
	for i, name := range []string{"a", "b", "c"} {
		if cells[i].Peer != name {
			t.Fatalf("cell %d is %s, want %s", i, cells[i].Peer, name)
		}
	}
	if cells[0].Status != "ok" || len(cells[0].Runs) != 3 || cells[2].Status != "ok" || len(cells[2].Runs) != 3 {
		t.Errorf("a: %s %d runs, c: %s %d runs; want ok with 3 each", cells[0].Status, len(cells[0].Runs), cells[2].Status, len(cells[2].Runs))
	}
	if cells[1].Status != "failed" || !strings.HasPrefix(cells[1].Reason, "run 2: ") || len(cells[1].Runs) != 1 {
		t.Errorf("b: %s (%s) with %d runs; want failed in run 2 after 1 run", cells[1].Status, cells[1].Reason, len(cells[1].Runs))
	}
	if got := r.progress.remaining(); got != 0 {
		t.Errorf("progress expects %v more after the scenario (the failed peer's runs are skipped)", got)
	}
}

// Peak RSS is the server's own (VmHWM of its process), not the load
// generator's: a server that touched 64 MiB reports at least that, while the
// load generator of this test stays far below.
func TestPeakRSSIsTheServers(t *testing.T) {
	r, self := testRunner(t, 1)
	p := testPeer(self, "fat", "")
	p.launch = func(mode, addr string, loops int) ([]string, []string) {
		return []string{self, "-addr", addr, "-mode", "echo", "-touch-mib", "64"}, []string{"BENCH_TEST_ROLE=server"}
	}
	lean := testPeer(self, "lean", "")
	cells := r.runScenario(Scenario{Name: "echo-2", Kind: "echo", Conns: 2, Size: 64}, []*builtPeer{p, lean})
	if cells[0].Status != "ok" || cells[1].Status != "ok" {
		t.Fatalf("%s: %s; %s: %s", cells[0].Peer, cells[0].Reason, cells[1].Peer, cells[1].Reason)
	}
	if cells[0].PeakRSSKiB < 64<<10 {
		t.Errorf("fat server: peak RSS %d KiB, want at least 64 MiB", cells[0].PeakRSSKiB)
	}
	if cells[1].PeakRSSKiB <= 0 || cells[1].PeakRSSKiB >= 48<<10 {
		t.Errorf("lean server: peak RSS %d KiB, want its own few MiB", cells[1].PeakRSSKiB)
	}
}

func TestRunScenarioReportsFailures(t *testing.T) {
	r, self := testRunner(t, 1)
	sc := Scenario{Name: "echo-2", Kind: "echo", Conns: 2, Size: 600}
	cells := r.runScenario(sc, []*builtPeer{testPeer(self, "corrupt", "corrupt-echo"), testPeer(self, "bad", "no-such-mode"), testPeer(self, "good", "")})
	if c := cells[0]; c.Status != "failed" || !strings.Contains(c.Reason, "correctness check: echo mismatch") {
		t.Errorf("corrupting peer: %s: %s", c.Status, c.Reason)
	}
	if c := cells[1]; c.Status != "failed" || !strings.Contains(c.Reason, `unknown mode "no-such-mode"`) {
		t.Errorf("peer that exits at once: %s: %s", c.Status, c.Reason)
	}
	if c := cells[2]; c.Status != "ok" || len(c.Runs) != 1 {
		t.Errorf("good peer next to failing ones: %s: %s, %d runs", c.Status, c.Reason, len(c.Runs))
	}
}

// The https scenarios: the runner passes the certificate, the check
// records what was negotiated, and both the keep-alive and the handshake
// load run (wrk is not used with a fractional window).
func TestRunScenarioHTTPS(t *testing.T) {
	r, self := testRunner(t, 1)
	r.tls = testCert(t)
	p := testPeer(self, "testpeer", "")
	for _, sc := range []Scenario{
		{Name: "https-4", Kind: "https", Conns: 4, Depth: 1, Wrk: true},
		{Name: "https-handshake-2", Kind: "https", Conns: 2, Depth: 1, Handshake: true},
	} {
		c := r.runScenario(sc, []*builtPeer{p})[0]
		if c.Status != statusOK || len(c.Runs) != 1 || c.Tool != "loadgen" {
			t.Fatalf("%s: %s (%s), %d runs with %s", sc.Name, c.Status, c.Reason, len(c.Runs), c.Tool)
		}
		if !strings.HasPrefix(c.TLS, "TLS 1.3, ") || c.Runs[0].Ops <= 0 || c.Runs[0].CPUPerOpUs <= 0 {
			t.Errorf("%s: negotiated %q; run %+v", sc.Name, c.TLS, c.Runs[0])
		}
	}
}

// A peer that cannot serve TLS (exit status 69, or a program without the
// -tls-cert flag) is skipped with its reason, not failed, and its runs are
// not waited for.
func TestRunScenarioSkipsUnsupported(t *testing.T) {
	r, self := testRunner(t, 2)
	r.tls = testCert(t)
	var log bytes.Buffer
	r.progress = newProgress(&log, 6, time.Second, 0, 0)
	ps := []*builtPeer{testPeer(self, "no-tls", "unsupported"), testPeer(self, "old-hello", "flagless"), testPeer(self, "good", "")}
	cells := r.runScenario(Scenario{Name: "https-2", Kind: "https", Conns: 2, Depth: 1}, ps)
	for i, want := range []string{"TLS not supported yet: this test peer says so", "no -tls-cert flag: TLS not supported yet"} {
		if c := cells[i]; c.Status != statusSkipped || c.Reason != want || len(c.Runs) != 0 {
			t.Errorf("%s: %s (%q), %d runs; want skipped (%q)", c.Peer, c.Status, c.Reason, len(c.Runs), want)
		}
	}
	if c := cells[2]; c.Status != statusOK || len(c.Runs) != 2 {
		t.Errorf("good peer: %s (%s), %d runs", c.Status, c.Reason, len(c.Runs))
	}
	if !strings.Contains(log.String(), "https-2 / no-tls: skipped: TLS not supported yet") {
		t.Errorf("progress:\n%s", log.String())
	}
	if got := r.progress.remaining(); got != 0 {
		t.Errorf("progress expects %v more", got)
	}
	// Without the TLS flags, the program that lacks them serves.
	cells = r.runScenario(Scenario{Name: "http-2", Kind: "http", Conns: 2, Depth: 1}, ps[1:2])
	if c := cells[0]; c.Status != statusOK {
		t.Errorf("flagless peer in http: %s (%s)", c.Status, c.Reason)
	}
}

func TestRunOrder(t *testing.T) {
	got := runOrder(3, 2)
	want := []slot{{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}, {1, 2}}
	if !slices.Equal(got, want) {
		t.Errorf("runOrder(3, 2) = %v, want %v", got, want)
	}
	if got := runOrder(2, 0); len(got) != 0 {
		t.Errorf("runOrder(2, 0) = %v", got)
	}
}

func TestStartPinnedSetsChildAffinity(t *testing.T) {
	cpus := allowedCPUs()
	if len(cpus) == 0 {
		t.Fatal("no allowed CPU")
	}
	cpu := cpus[len(cpus)-1]
	cmd := exec.Command("sleep", "10")
	if err := startPinned(cmd, cpu); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("Cpus_allowed_list:\t" + strconv.Itoa(cpu) + "\n")
	if !bytes.Contains(status, want) {
		t.Errorf("child status lacks %q", want)
	}
	// The parent's own threads keep their affinity.
	if got := allowedCPUs(); len(got) != len(cpus) {
		t.Errorf("parent affinity changed: %v, was %v", got, cpus)
	}
}

func TestParseProcStat(t *testing.T) {
	line := []byte("1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1000 0 0\n")
	v, err := parseProcStatCPU(line)
	if err != nil || v != 3.25 {
		t.Fatalf("cpu %v, err %v; want 3.25 s (325 ticks)", v, err)
	}
	if _, err := parseProcStatCPU([]byte("1234 (x) S 1")); err == nil {
		t.Error("no error for a short line")
	}
	if rss, err := peakRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("own peak RSS %d, err %v", rss, err)
	}
}
