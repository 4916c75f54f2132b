package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	r := sampleReportMedians()
	for i := range r.Cells {
		if c := &r.Cells[i]; c.Status == "ok" {
			for rep := 1; rep <= r.Options.Count; rep++ {
				run := c.Median
				run.Rep = rep
				c.Runs = append(c.Runs, run)
			}
		}
	}
	return r
}

// sampleReportMedians is sampleReport without the runs.
func sampleReportMedians() *Report {
	run := func(ops float64, cpu float64, lg float64) Run {
		return Run{Ops: int64(ops), Seconds: 1, OpsPerSec: ops, P50us: 120, P99us: 2500, ServerCPUSec: cpu * ops / 1e6, CPUPerOpUs: cpu, LoadgenCPUPct: lg}
	}
	return &Report{
		Machine: Machine{CPU: "Test CPU <&>", CPUs: 2, Kernel: "Linux 6.1", Go: "go1.26", Pinned: true, Wrk: "wrk 4.1.0"},
		Options: Options{Count: 3, Duration: time.Second, Warmup: 500 * time.Millisecond},
		Started: time.Date(2026, 11, 26, 1, 2, 3, 0, time.UTC),
		Scenarios: []Scenario{
			{Name: "echo-64", Kind: "echo", Conns: 64, Size: 64},
			{Name: "http-100", Kind: "http", Conns: 100, Depth: 1, Wrk: true},
			{Name: "multi-loop", Kind: "echo", Conns: 64, Size: 64, Loops: 2},
			{Name: "micro", Kind: "micro"},
		},
		Peers: []PeerInfo{{Name: "ioloop", Lang: "go", Ours: true, Status: "ok"}, {Name: "cepoll", Lang: "c", Status: "ok"},
			{Name: "tornado", Lang: "python", Status: "ok"}, {Name: "libevent", Lang: "c", Status: "skipped", Reason: "libevent headers missing"}},
		Cells: []Cell{
			{Scenario: "echo-64", Peer: "ioloop", Status: "ok", Tool: "loadgen", Median: run(100000, 10, 95), PeakRSSKiB: 8192, LoadgenCores: 1, Saturated: true},
			{Scenario: "echo-64", Peer: "cepoll", Status: "ok", Tool: "loadgen", Median: run(110000, 9, 97), PeakRSSKiB: 1536, LoadgenCores: 1, Saturated: true},
			{Scenario: "echo-64", Peer: "tornado", Status: "ok", Tool: "loadgen", Median: run(10000, 300, 20), PeakRSSKiB: 30000, LoadgenCores: 1},
			{Scenario: "http-100", Peer: "ioloop", Status: "failed", Reason: "correctness check: response \"HTTP/1.1 500 | x\", want 200", Tool: "wrk"},
			{Scenario: "http-100", Peer: "cepoll", Status: "ok", Tool: "wrk", Median: run(50000, 11, 60), PeakRSSKiB: 1500, LoadgenCores: 1},
			{Scenario: "multi-loop", Peer: "ioloop", Status: "ok", Tool: "loadgen", Median: run(150000, 12, 150), PeakRSSKiB: 9000, LoadgenCores: 2},
		},
		Micro: []MicroResult{
			{Name: "BenchmarkDispatch/ioloop", Procs: 2, N: 1000, Metrics: map[string]float64{"ns/op": 4669, "B/op": 0, "allocs/op": 0, "events/batch": 64}},
			{Name: "BenchmarkMillionTimers", Procs: 2, N: 1, Metrics: map[string]float64{"ns/op": 891195299, "B/op": 147015912, "allocs/op": 1000101}},
		},
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := writeTable(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Test CPU <&>, 2 CPUs, Linux 6.1, go1.26, 2026-11-26 01:02 UTC. Median of 3 runs of 1s after 500ms warm-up each, the peers interleaved",
		// The verdict comes first, then the details.
		"\n\n## Verdict\n\n",
		"| echo-64 | 10.00 µs | 1.11× | – | behind C epoll by 11% |",
		"| server CPU/op ≤ 1.05× C epoll in every single-loop scenario | 0 of 2 scenarios within; not: echo-64 1.11×, http-100 failed; not run: echo-1, echo-1000, echo-64-16k, http-100-pipeline16 | **not met** |",
		"## Detailed results",
		"### echo-64: TCP echo, 64 connections, 64 B ping-pong",
		// ioloop is its own baseline; cepoll: 110k/100k ops/s, 9/10 CPU/op.
		"| ioloop | 100.0k | 120 µs | 2.50 ms | 10.00 µs | 8.0 MiB | 95% ⚠ | 1.00 | 1.00 |",
		"| cepoll | 110.0k | 120 µs | 2.50 ms | 9.00 µs | 1.5 MiB | 97% ⚠ | 1.10 | 0.90 |",
		"| tornado | 10.0k | 120 µs | 2.50 ms | 300 µs | 29.3 MiB | 20% | 0.10 | 30.00 |",
		// A failed ioloop is shown, its reason kept inside the cell, and ratios are n/a.
		`| ioloop | **failed**: correctness check: response "HTTP/1.1 500 \| x", want 200 |`,
		"| cepoll | 50.0k | 120 µs | 2.50 ms | 11.00 µs | 1.5 MiB | 60% | n/a | n/a |",
		"timed with wrk 4.1.0 (-t1)",
		"no ioloop result in this scenario: ratios n/a",
		"servers run 2 loops on both CPUs and the load generator runs unpinned",
		"| BenchmarkDispatch/ioloop | 4669 | 0 | 0 | 64 |",
		"| BenchmarkMillionTimers | 891195299 | 147015912 | 1000101 | |",
		"- libevent: libevent headers missing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q\n%s", want, out)
		}
	}
	if v, d := strings.Index(out, "## Verdict"), strings.Index(out, "## Detailed results"); v < 0 || d < v || strings.Index(out, "### echo-64") < d {
		t.Errorf("verdict at %d, details at %d: want the verdict first", v, d)
	}
	// Every table row has as many cells as its header.
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| peer |") {
			if n := strings.Count(line, "|"); n != 10 {
				t.Errorf("header has %d bars: %s", n, line)
			}
		}
	}
}

// The TLS scenarios: a skipped peer keeps its row with the reason, and the
// note says what the peers negotiated, warning when they differ.
func TestWriteTableTLS(t *testing.T) {
	r := sampleReport()
	r.Scenarios = []Scenario{{Name: "https-handshake", Kind: "https", Conns: 16, Depth: 1, Handshake: true}}
	ok := func(peer, params string, cpu float64) Cell {
		return Cell{Scenario: "https-handshake", Peer: peer, Status: statusOK, Tool: "loadgen", TLS: params, LoadgenCores: 1,
			Median: Run{Ops: 1000, Seconds: 1, OpsPerSec: 1000, P50us: 8000, P99us: 15000, CPUPerOpUs: cpu, LoadgenCPUPct: 80}, PeakRSSKiB: 8192}
	}
	const aes128 = "TLS 1.3, TLS_AES_128_GCM_SHA256, X25519"
	r.Cells = []Cell{
		{Scenario: "https-handshake", Peer: "ioloop", Status: statusSkipped, Reason: "TLS not supported yet: no ioloop.ListenTLS in this commit (issue 12)"},
		ok("copenssl", aes128, 680),
		ok("gonet", aes128, 545),
	}
	var b bytes.Buffer
	if err := writeTable(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"### https-handshake: HTTPS hello world, a new connection and full TLS 1.3 handshake per request, 16 clients at a time",
		"| ioloop | not measured: TLS not supported yet: no ioloop.ListenTLS in this commit (issue 12) | | | | | | | |",
		"| copenssl | 1.0k | 8.00 ms | 15 ms | 680 µs | 8.0 MiB | 80% | n/a | n/a |",
		"every peer negotiated " + aes128 + " with the check's Go client",
		"every request is a new connection with a full handshake",
		"| https-handshake | not measured | | | | not measured: TLS not supported yet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q\n%s", want, out)
		}
	}
	r.Cells[2].TLS = "TLS 1.3, TLS_AES_256_GCM_SHA384, X25519"
	b.Reset()
	if err := writeTable(&b, r); err != nil {
		t.Fatal(err)
	}
	if want := "⚠ the peers negotiated different parameters: " + aes128 + " (copenssl); TLS 1.3, TLS_AES_256_GCM_SHA384, X25519 (gonet)"; !strings.Contains(b.String(), want) {
		t.Errorf("table lacks %q\n%s", want, b.String())
	}
	b.Reset()
	if err := writeSVG(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "not measured: TLS not supported yet") {
		t.Errorf("SVG lacks the skipped peer:\n%s", b.String())
	}
}

func TestWriteTableMicroError(t *testing.T) {
	r := sampleReport()
	r.Micro, r.MicroError = nil, "go test -bench: no Go files"
	var b bytes.Buffer
	if err := writeTable(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Skipped: go test -bench: no Go files") {
		t.Errorf("micro error not reported:\n%s", b.String())
	}
}

func TestWriteSVGWellFormed(t *testing.T) {
	var b bytes.Buffer
	if err := writeSVG(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&b)
	var groups, rects, breaks int
	var texts []string
	var root string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
				if el.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", el.Name.Space)
				}
			}
			switch el.Name.Local {
			case "g":
				groups++
			case "rect":
				rects++
			case "path":
				breaks++
			}
		case xml.CharData:
			if s := strings.TrimSpace(string(el)); s != "" {
				texts = append(texts, s)
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q", root)
	}
	// echo-64, http-100, multi-loop and micro.
	if groups != 4 {
		t.Errorf("%d groups, want 4", groups)
	}
	// Background + 2 bars per ok cell (3 + 1 + 1) + 2 micro bars.
	if rects != 1+2*5+2 {
		t.Errorf("%d rects, want %d", rects, 1+2*5+2)
	}
	// Tornado's 300 µs is past 4x the cheapest (9 µs): one break mark.
	if breaks != 1 {
		t.Errorf("%d break marks, want 1", breaks)
	}
	joined := strings.Join(texts, "\n")
	for _, want := range []string{"Test CPU <&>", "median of 3 runs of 1s, the peers interleaved", "echo-64: TCP echo, 64 connections, 64 B ping-pong", "ioloop", "10.00 µs", "110.0k", "failed: correctness check"} {
		if !strings.Contains(joined, want) {
			t.Errorf("SVG text lacks %q", want)
		}
	}
}

func TestWriteJSONRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	want := sampleReport()
	sum := summarize(want)
	want.Summary = &sum
	if err := writeFile(path, func(f *os.File) error { return writeJSON(f, want) }); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("JSON does not parse: %v", err)
	}
	if len(got.Cells) != len(want.Cells) || got.Cells[1].Median.CPUPerOpUs != 9 || got.Cells[3].Reason != want.Cells[3].Reason {
		t.Errorf("cells differ after the round trip: %+v", got.Cells)
	}
	if got.Options.Duration != time.Second || got.Machine.CPU != want.Machine.CPU || len(got.Micro) != 2 {
		t.Errorf("options/machine/micro differ: %+v %+v %d", got.Options, got.Machine, len(got.Micro))
	}
	// The raw field names are what scripts read.
	if got.Summary == nil || len(got.Summary.Rows) != 3 || got.Summary.Rows[0].VsC == nil || len(got.Summary.Targets) != 7 {
		t.Errorf("summary differs after the round trip: %+v", got.Summary)
	}
	for _, key := range []string{`"server_cpu_per_op_us"`, `"ops_per_sec"`, `"p99_us"`, `"peak_rss_kib"`, `"loadgen_saturated"`, `"rep"`, `"lang"`, `"verdict"`, `"vs_c"`, `"targets"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestSelectOnly(t *testing.T) {
	scs, ps, err := selectOnly([]string{"echo-64", "gnet", " ioloop"}, defaultScenarios(), peers())
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 1 || scs[0].Name != "echo-64" || len(ps) != 2 || ps[0].Name != "ioloop" || ps[1].Name != "gnet" {
		t.Errorf("selected %v / %v", scs, ps)
	}
	scs, ps, err = selectOnly([]string{"cepoll"}, defaultScenarios(), peers())
	if err != nil || len(scs) != len(defaultScenarios()) || len(ps) != 1 {
		t.Errorf("peer only: %d scenarios, %d peers, %v", len(scs), len(ps), err)
	}
	if _, _, err := selectOnly([]string{"echo-65"}, defaultScenarios(), peers()); err == nil || !strings.Contains(err.Error(), `"echo-65"`) {
		t.Errorf("unknown name: err = %v", err)
	}
}

func TestMedianRun(t *testing.T) {
	m := medianRun([]Run{{OpsPerSec: 3, CPUPerOpUs: 10}, {OpsPerSec: 1, CPUPerOpUs: 30}, {OpsPerSec: 2, CPUPerOpUs: 20}})
	if m.OpsPerSec != 2 || m.CPUPerOpUs != 20 {
		t.Errorf("median run %+v", m)
	}
}

// The micro-benchmarks (about a minute by default) count in the estimate
// from the start, and each result line is reported with a fresh estimate:
// the last phase used to run silently under "~0:05 left".
func TestProgressEstimateWithMicro(t *testing.T) {
	var b bytes.Buffer
	// 2 runs of 10 s, then 30 result lines expected at 2 s each.
	p := newProgress(&b, 2, 10*time.Second, 30, 2*time.Second)
	now := p.start
	p.now = func() time.Time { return now }
	p.run("echo-1", "ioloop", 1, 1)
	now = now.Add(10 * time.Second)
	p.runDone()
	p.run("echo-1", "cepoll", 1, 1)
	now = now.Add(10 * time.Second)
	p.runDone()
	p.microStep("go test -bench X")
	now = now.Add(4 * time.Second) // go test building, the first benchmark running
	for i := 0; i < 10; i++ {
		now = now.Add(3 * time.Second) // slower than expected: 3 s a line
		p.microResult("BenchmarkX")
	}
	p.microDone()
	out := b.String()
	for _, want := range []string{
		"[1/3 0:00 elapsed, ~1:20 left] echo-1 / ioloop: run 1 of 1", // 2 x 10 s + 30 x 2 s
		"[2/3 0:10 elapsed, ~1:10 left] echo-1 / cepoll: run 1 of 1",
		"[3/3 0:20 elapsed, ~1:00 left] micro: go test -bench X (~30 results)",
		"[3/3 0:27 elapsed, ~0:58 left] micro: BenchmarkX (1 of ~30)",  // 29 x the expected 2 s
		"[3/3 0:54 elapsed, ~1:00 left] micro: BenchmarkX (10 of ~30)", // 9 more in 27 s: 20 x 3 s
	} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	if got := p.remaining(); got != 0 {
		t.Errorf("remaining after the micro phase = %v, want 0", got)
	}
}

func TestProgressEstimate(t *testing.T) {
	var b bytes.Buffer
	// 2 peers x 3 repetitions, 10 s a run expected.
	p := newProgress(&b, 6, 10*time.Second, 0, 0)
	now := p.start
	p.now = func() time.Time { return now }
	p.run("echo-64", "cepoll", 1, 3)
	now = now.Add(20 * time.Second)
	p.runDone()
	p.run("echo-64", "gnet", 1, 3)
	now = now.Add(20 * time.Second)
	// gnet fails: its 3 runs will not take place (this one included).
	p.skip(3)
	p.cellDone(Cell{Scenario: "echo-64", Peer: "gnet", Status: "failed", Reason: "boom"})
	p.run("echo-64", "cepoll", 2, 3)
	out := b.String()
	// Before any run: 6 x 10 s left; after one run in 20 s: 5 x 20 s; after
	// 4 of 6 (3 skipped) in 40 s: 2 x 10 s.
	for _, want := range []string{"[1/6 0:00 elapsed, ~1:00 left] echo-64 / cepoll: run 1 of 3",
		"[2/6 0:20 elapsed, ~1:40 left] echo-64 / gnet: run 1 of 3",
		"echo-64 / gnet: FAILED: boom",
		"[5/6 0:40 elapsed, ~0:20 left] echo-64 / cepoll: run 2 of 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	p.cellDone(Cell{Scenario: "echo-64", Peer: "cepoll", Status: "ok", Median: Run{OpsPerSec: 12345, P99us: 800, CPUPerOpUs: 9.5, LoadgenCPUPct: 97}, Saturated: true})
	if want := "    echo-64 / cepoll: 12.3k ops/s, p99 800 µs, server 9.50 µs CPU/op, loadgen 97% (load generator saturated)\n"; !strings.HasSuffix(b.String(), want) {
		t.Errorf("cell line:\n got %q\nwant %q", b.String()[len(out):], want)
	}
}

func TestMicroTableExplainsItsRows(t *testing.T) {
	var b strings.Builder
	writeMicroTable(&b, &Report{Micro: []MicroResult{
		{Name: "BenchmarkDispatch/ioloop-callback-per-event/pairs=1", Metrics: map[string]float64{"ns/op": 1}},
		{Name: "BenchmarkMillionTimers", Metrics: map[string]float64{"ns/op": 1}},
	}})
	out := b.String()
	for _, want := range []string{"`ioloop-callback-per-batch` and `ioloop-callback-per-event` are the two other dispatch shapes",
		"BenchmarkMillionTimers (libuv's"} {
		if !strings.Contains(out, want) {
			t.Errorf("micro table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "BenchmarkAddCallback:") {
		t.Errorf("a note for a benchmark that is not in the table:\n%s", out)
	}
}
