//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClientPeersFetchCorrectly builds the fixed servers and every client
// peer whose toolchain is here, and runs each by count against the hello
// server (body kept) and a 1 MiB body server (body streamed and dropped):
// every request completes without error, the result line is complete, and
// the fds at the end are within the connections in flight. The Python peers are skipped only when
// Tornado (or pycurl) is not installed; the others must build.
func TestClientPeersFetchCorrectly(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	env := &buildEnv{root: filepath.Dir(wd), bench: wd, out: t.TempDir(), goBin: goBinary()}
	hello := startTestServer(t, env, 0)
	body := startTestServer(t, env, 1<<20)
	// The warm-up opens the connections, so that the fds counted at the
	// start of the window are all there.
	r := &runner{opts: Options{Warmup: 300 * time.Millisecond, Duration: time.Second}, serverCPU: -1, loadCPU: -1}
	for _, p := range clientPeers() {
		t.Run(p.Name, func(t *testing.T) {
			launch, err := p.Build(env)
			if err != nil {
				if p.Lang == "python" {
					t.Skipf("build: %v", err)
				}
				t.Fatalf("build: %v", err)
			}
			bp := &builtPeer{Peer: p, launch: launch}
			for _, c := range []struct {
				srv *testServer
				sc  Scenario
			}{
				{hello, Scenario{Name: "hello", Kind: clientKind, Conns: 10, Requests: 300}},
				{body, Scenario{Name: "body", Kind: clientKind, Conns: 2, Size: 1 << 20, Requests: 6, Discard: true}},
			} {
				run, err := r.measureClient(c.sc, bp, c.srv.srv, c.srv.url)
				if err != nil {
					t.Fatalf("%s: %v", c.sc.Name, err)
				}
				if run.Ops < c.sc.Requests || run.CPUPerOpUs <= 0 || run.RSSEndKiB <= 0 {
					t.Errorf("%s: %+v", c.sc.Name, run)
				}
				// Pools may still open connections (Tornado's simple
				// client opens one per request): a leak shows beyond that.
				if run.FDsEnd > run.FDsStart+c.sc.Conns {
					t.Errorf("%s: fds %d -> %d", c.sc.Name, run.FDsStart, run.FDsEnd)
				}
			}
		})
	}
}

type testServer struct {
	srv *server
	url string
}

// startTestServer starts the hello server (size 0) or the body server.
func startTestServer(t *testing.T, env *buildEnv, size int) *testServer {
	t.Helper()
	var launch Launcher
	var err error
	if size == 0 {
		launch, err = buildC(referencePeer, nil)(env)
	} else {
		launch, err = buildBodyServer(env, size)
	}
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	argv, penv := launch("hello", addr, 1)
	srv, err := startServer(argv, penv, addr, -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	url := "http://" + addr + "/"
	if err := checkClientServer(url, size); err != nil {
		t.Fatalf("server check: %v", err)
	}
	return &testServer{srv, url}
}

// The body server answers pipelined requests in order, and keeps answering
// on the same connection (keep-alive), past the socket buffers.
func TestBodyServerKeepAlive(t *testing.T) {
	wd, _ := os.Getwd()
	env := &buildEnv{bench: wd, out: t.TempDir()}
	s := startTestServer(t, env, 3<<20)
	for range 3 {
		if err := checkClientServer(s.url, 3<<20); err != nil {
			t.Fatal(err)
		}
	}
}

// Client peers take part in client scenarios only, server peers never.
func TestClientKinds(t *testing.T) {
	clients := map[string]bool{}
	for _, p := range clientPeers() {
		clients[p.Name] = true
	}
	for _, p := range peers() {
		for _, sc := range defaultScenarios() {
			if sc.Kind == "micro" {
				continue
			}
			if p.takesPart(sc) && clients[p.Name] != isClientKind(sc.Kind) {
				t.Errorf("%s takes part in %s", p.Name, sc.Name)
			}
		}
	}
	r := &runner{opts: Options{Count: 3, Quick: true}}
	for _, sc := range clientScenarios() {
		if sc.Kind == clientFlatKind && (r.clientReps(sc) != 1 || r.clientRequests(sc) != clientFlatRequests/10) {
			t.Errorf("%s: %d reps of %d requests in -quick", sc.Name, r.clientReps(sc), r.clientRequests(sc))
		}
	}
}

func clientCell(sc, peer string, cpus ...float64) Cell {
	c := Cell{Scenario: sc, Peer: peer, Status: statusOK}
	for i, v := range cpus {
		c.Runs = append(c.Runs, Run{Rep: i + 1, Ops: 1000, Seconds: 1, OpsPerSec: 1000, CPUPerOpUs: v})
	}
	c.Median = medianRun(c.Runs)
	return c
}

func TestClientTargets(t *testing.T) {
	r := &Report{Scenarios: clientScenarios()}
	r.Cells = []Cell{
		clientCell("client-hello-100", curlPeer, 10.5, 10.4, 11),
		clientCell("client-hello-100", curlReferencePeer, 10, 10, 10),
		clientCell("client-hello-100", netHTTPClientPeer, 12, 12, 12),
		clientCell("client-body-16m", curlPeer, 3000, 3100, 3000),
		clientCell("client-body-16m", curlReferencePeer, 2500, 2500, 2500),
		clientCell("client-body-16m", netHTTPClientPeer, 3300, 3300, 3300),
	}
	flat := clientCell("client-hello-100k", curlPeer, 10)
	flat.Runs[0].Ops, flat.Runs[0].RSSStartKiB, flat.Runs[0].RSSEndKiB = clientFlatRequests, 20000, 21000
	flat.Runs[0].FDsStart, flat.Runs[0].FDsEnd = 113, 113
	r.Cells = append(r.Cells, flat)
	ts := clientTargets(r)
	want := []string{statusNotMet, statusMet, statusMet}
	for i, tc := range ts {
		if tc.Status != want[i] || tc.Issue != 10 {
			t.Errorf("%s: %s (%s), want %s", tc.Target, tc.Status, tc.Measured, want[i])
		}
	}
	if !strings.Contains(ts[0].Measured, "client-body-16m 1.20×") || !strings.Contains(ts[0].Measured, "client-hello-100 1.05×") {
		t.Errorf("vs C: %q", ts[0].Measured)
	}
	// A leak or an fd left open is not flat.
	r.Cells[len(r.Cells)-1].Runs[0].FDsEnd = 114
	if got := clientTargets(r)[2].Status; got != statusNotMet {
		t.Errorf("an extra fd: %s", got)
	}

	var b strings.Builder
	writeClientSummary(&b, r)
	for _, sc := range clientScenarios() {
		writeClientTable(&b, r, sc)
	}
	out := b.String()
	for _, want := range []string{"| client-hello-100 | 10.50 µs | 1.05× | 0.88× |", "| nethttp-client | 1.0k | 12.00 µs |",
		"| ioloop-curl | 100000 | 10.00 µs | 19.5 MiB → 20.5 MiB | 113 → 114 |"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// The result line of a client peer parses; a malformed one is an error.
func TestClientResultLine(t *testing.T) {
	m := clientResultLine.FindStringSubmatch("noise\nrequests=12 errors=0 cpu_us=345 wall_us=1000 rss_kb_start=10 rss_kb_end=11 fds_start=7 fds_end=7\n")
	if m == nil || m[1] != "12" || m[8] != "7" {
		t.Fatalf("%q", m)
	}
	if clientResultLine.MatchString("requests=12 errors=0") {
		t.Fatal("a partial line matched")
	}
}
