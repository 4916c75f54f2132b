package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// microPattern selects the loop's micro-benchmarks in the root package.
const microPattern = "BenchmarkDispatch|BenchmarkAddCallback|BenchmarkMillionTimers"

// microResultsPerCount is how many result lines microPattern gives per
// -count repeat: BenchmarkDispatch 8 (C, ioloop and the two rejected
// dispatch shapes, at 1 and 64 pairs), BenchmarkAddCallback 2,
// BenchmarkMillionTimers 1. It only feeds the progress estimate
// (TestMicroResultsPerCount keeps it in step with results/latest.json).
const microResultsPerCount = 11

// microPerLine estimates the time go test takes per result line: about
// twice -benchtime (the testing package grows b.N until a run lasts
// benchtime), measured 0.2 s at 100ms and 1.8 s at the default 1s.
func microPerLine(benchtime string) time.Duration {
	if benchtime == "" {
		benchtime = "1s"
	}
	d, err := time.ParseDuration(benchtime)
	if err != nil || d <= 0 {
		return 2 * time.Second // "Nx": a fixed count, length unknown
	}
	return 2 * d
}

// MicroResult is one benchmark's line of `go test -bench` output (the median
// over -count repeats when there are several).
type MicroResult struct {
	Name    string             `json:"name"`  // without the -GOMAXPROCS suffix
	Procs   int                `json:"procs"` // the -N suffix, 1 when absent
	N       int64              `json:"n"`     // iterations
	Metrics map[string]float64 `json:"metrics"`
}

// parseGoBench reads the standard benchmark format (what benchstat reads):
// "BenchmarkName-P  N  value unit  value unit ...". Other lines (goos:, pkg:,
// PASS, ok, logs) are skipped; "cpu:" is returned for the report.
func parseGoBench(out []byte) (results []MicroResult, cpu string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "cpu: "); ok {
			cpu = strings.TrimSpace(v)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // a benchmark's own log line, or a name printed before a failure
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		r := MicroResult{Name: f[0], Procs: 1, N: n, Metrics: map[string]float64{}}
		if i := strings.LastIndexByte(f[0], '-'); i > 0 {
			if p, err := strconv.Atoi(f[0][i+1:]); err == nil {
				r.Name, r.Procs = f[0][:i], p
			}
		}
		ok := true
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				ok = false
				break
			}
			r.Metrics[f[i+1]] = v
		}
		if ok {
			results = append(results, r)
		}
	}
	return medianMicro(results), cpu, sc.Err()
}

// medianMicro folds repeats (-count) of the same benchmark into one result
// holding each metric's median, keeping first-seen order.
func medianMicro(rs []MicroResult) []MicroResult {
	var order []string
	groups := map[string][]MicroResult{}
	for _, r := range rs {
		key := r.Name + "-" + strconv.Itoa(r.Procs)
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], r)
	}
	out := make([]MicroResult, 0, len(order))
	for _, key := range order {
		g := groups[key]
		m := MicroResult{Name: g[0].Name, Procs: g[0].Procs, N: g[0].N, Metrics: map[string]float64{}}
		for unit := range g[0].Metrics {
			var vs []float64
			for _, r := range g {
				if v, ok := r.Metrics[unit]; ok {
					vs = append(vs, v)
				}
			}
			m.Metrics[unit] = median(vs)
		}
		out = append(out, m)
	}
	return out
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runMicro runs the loop micro-benchmarks of the root package, calling
// onResult (if not nil) with each benchmark's name as its result comes in
// (go test streams -bench output). An error is a one-line reason to report
// (the benchmarks missing, the package not building, a benchmark failing).
func runMicro(goBin, root, benchtime string, count int, onResult func(name string)) ([]MicroResult, string, error) {
	args := []string{"test", "-run", "^$", "-bench", microPattern, "-benchmem", "-count", "1"}
	if benchtime != "" {
		args = append(args, "-benchtime", benchtime)
	}
	args = append(args, "github.com/ioloop-go/ioloop")
	// One go test per repetition, each running every benchmark once, rather
	// than -count N (N runs of one benchmark in a row): the C baseline and
	// the ioloop shapes then share each repetition's machine state, as the
	// peers of a scenario do.
	var all bytes.Buffer
	for range max(count, 1) {
		cmd := exec.Command(goBin, args...)
		cmd.Dir = root
		var buf bytes.Buffer
		lw := &lineWriter{fn: func(line string) {
			if name, ok := benchResultName(line); ok && onResult != nil {
				onResult(name)
			}
		}}
		cmd.Stdout = io.MultiWriter(&buf, lw)
		cmd.Stderr = cmd.Stdout
		if err := cmd.Run(); err != nil {
			return nil, "", fmt.Errorf("go test -bench: %s", firstLine(buf.Bytes(), err))
		}
		all.Write(buf.Bytes())
	}
	rs, cpu, perr := parseGoBench(all.Bytes())
	if perr != nil {
		return nil, cpu, perr
	}
	if len(rs) == 0 {
		return nil, cpu, fmt.Errorf("go test -bench %q matched no benchmark in github.com/ioloop-go/ioloop", microPattern)
	}
	return rs, cpu, nil
}

// benchResultName returns the benchmark name (without -GOMAXPROCS) of a
// result line of go test -bench output.
func benchResultName(line string) (string, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return "", false
	}
	if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
		return "", false
	}
	name := f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	return name, true
}

// lineWriter calls fn with each complete line written to it.
type lineWriter struct {
	fn   func(string)
	part []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.part = append(w.part, p...)
			return n, nil
		}
		w.fn(string(append(w.part, p[:i]...)))
		w.part = w.part[:0]
		p = p[i+1:]
	}
}
