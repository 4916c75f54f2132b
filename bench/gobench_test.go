package main

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"
)

const goBenchSample = `goos: linux
goarch: amd64
pkg: github.com/ioloop-go/ioloop
cpu: AMD EPYC
BenchmarkDispatch-2           	 1000000	      1043 ns/op	        95.50 ns/event	       0 B/op	       0 allocs/op
BenchmarkDispatch/batch-2     	  500000	      2100 ns/op	       0 B/op	       0 allocs/op
BenchmarkAddCallback-2        	 5000000	       240.5 ns/op	      16 B/op	       1 allocs/op
BenchmarkAddCallback-2        	 5000000	       250.5 ns/op	      16 B/op	       1 allocs/op
BenchmarkAddCallback-2        	 5000000	       260.5 ns/op	      16 B/op	       1 allocs/op
BenchmarkMillionTimers        	       3	 412345678 ns/op	64000000 B/op	 1000010 allocs/op
--- BENCH: BenchmarkMillionTimers
    loop_test.go:12: some log line
PASS
ok  	github.com/ioloop-go/ioloop	12.345s
`

func TestParseGoBench(t *testing.T) {
	rs, cpu, err := parseGoBench([]byte(goBenchSample))
	if err != nil {
		t.Fatal(err)
	}
	if cpu != "AMD EPYC" {
		t.Errorf("cpu %q", cpu)
	}
	if len(rs) != 4 {
		t.Fatalf("%d results, want 4 (repeats folded): %+v", len(rs), rs)
	}
	d := rs[0]
	if d.Name != "BenchmarkDispatch" || d.Procs != 2 || d.N != 1000000 ||
		d.Metrics["ns/op"] != 1043 || d.Metrics["ns/event"] != 95.5 || d.Metrics["allocs/op"] != 0 {
		t.Errorf("dispatch: %+v", d)
	}
	if rs[1].Name != "BenchmarkDispatch/batch" {
		t.Errorf("sub-benchmark name %q", rs[1].Name)
	}
	if a := rs[2]; a.Name != "BenchmarkAddCallback" || a.Metrics["ns/op"] != 250.5 || a.Metrics["B/op"] != 16 {
		t.Errorf("add callback median: %+v", a)
	}
	if m := rs[3]; m.Name != "BenchmarkMillionTimers" || m.Procs != 1 || m.Metrics["ns/op"] != 412345678 {
		t.Errorf("million timers: %+v", m)
	}
}

func TestParseGoBenchNothing(t *testing.T) {
	rs, _, err := parseGoBench([]byte("PASS\nok  \tgithub.com/ioloop-go/ioloop\t0.01s\n"))
	if err != nil || len(rs) != 0 {
		t.Fatalf("results %v, err %v; want none", rs, err)
	}
}

func TestMedianEven(t *testing.T) {
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Fatalf("median = %v, want 2.5", m)
	}
}

func TestBenchResultNameAndLineWriter(t *testing.T) {
	var names []string
	lw := &lineWriter{fn: func(line string) {
		if n, ok := benchResultName(line); ok {
			names = append(names, n)
		}
	}}
	// Written in pieces that split lines, as a pipe delivers them.
	for s := goBenchSample; s != ""; {
		k := min(7, len(s))
		if _, err := lw.Write([]byte(s[:k])); err != nil {
			t.Fatal(err)
		}
		s = s[k:]
	}
	want := []string{"BenchmarkDispatch", "BenchmarkDispatch/batch", "BenchmarkAddCallback",
		"BenchmarkAddCallback", "BenchmarkAddCallback", "BenchmarkMillionTimers"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("result names %q, want %q", names, want)
	}
}

func TestMicroPerLine(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 2 * time.Second, "100ms": 200 * time.Millisecond,
		"3s": 6 * time.Second, "10x": 2 * time.Second} {
		if got := microPerLine(in); got != want {
			t.Errorf("microPerLine(%q) = %v, want %v", in, got, want)
		}
	}
}

// The committed results come from a full run: their micro rows are what
// microPattern selects, so the progress estimate's count must match them.
func TestMicroResultsPerCount(t *testing.T) {
	b, err := os.ReadFile("results/latest.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Micro []MicroResult `json:"micro"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Micro) != microResultsPerCount {
		t.Fatalf("results/latest.json has %d micro rows, microResultsPerCount is %d: update it "+
			"(and rerun the suite) when the benchmarks change", len(rep.Micro), microResultsPerCount)
	}
}
