//go:build linux

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
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

func TestRunCellEndToEnd(t *testing.T) {
	r, self := testRunner(t, 2)
	p := testPeer(self, "testpeer", "")
	for _, sc := range []Scenario{
		{Name: "echo-4", Kind: "echo", Conns: 4, Size: 64},
		{Name: "http-4", Kind: "http", Conns: 4, Depth: 4},
	} {
		c := r.runCell(sc, p)
		if c.Status != "ok" {
			t.Fatalf("%s: %s: %s", sc.Name, c.Status, c.Reason)
		}
		if len(c.Runs) != 2 || c.Tool != "loadgen" {
			t.Errorf("%s: %d runs with %s, want 2 with the built-in load generator", sc.Name, len(c.Runs), c.Tool)
		}
		for i, run := range c.Runs {
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

func TestRunCellReportsFailures(t *testing.T) {
	r, self := testRunner(t, 1)
	sc := Scenario{Name: "echo-2", Kind: "echo", Conns: 2, Size: 600}
	c := r.runCell(sc, testPeer(self, "corrupt", "corrupt-echo"))
	if c.Status != "failed" || !strings.Contains(c.Reason, "correctness check: echo mismatch") {
		t.Errorf("corrupting peer: %s: %s", c.Status, c.Reason)
	}
	c = r.runCell(sc, testPeer(self, "bad", "no-such-mode"))
	if c.Status != "failed" || !strings.Contains(c.Reason, `unknown mode "no-such-mode"`) {
		t.Errorf("peer that exits at once: %s: %s", c.Status, c.Reason)
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
