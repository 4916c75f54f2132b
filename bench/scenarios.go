package main

import "time"

// Scenario is one workload of the comparison.
type Scenario struct {
	Name  string `json:"name"`
	Desc  string `json:"desc"`
	Kind  string `json:"kind"`            // "echo", "http", "https" (HTTP over TLS), "client", "client-flat" (HTTP clients) or "micro"
	Conns int    `json:"conns,omitempty"` // client connections
	Size  int    `json:"size,omitempty"`  // echo message bytes
	Depth int    `json:"depth,omitempty"` // http requests in flight per connection
	// Loops > 1 is the multi-loop scenario: servers get both CPUs and
	// -loops N, the load generator runs unpinned with N threads, and only
	// peers that can run several loops take part.
	Loops int  `json:"loops,omitempty"`
	Wrk   bool `json:"wrk,omitempty"` // use wrk when installed (and the window is whole seconds)
	// Handshake (https): a new connection, with a full TLS handshake, per
	// request; Conns clients do that concurrently.
	Handshake bool `json:"handshake,omitempty"`
	// The HTTP-client scenarios (clients.go): Conns transfers in flight,
	// Size the body (0: the hello response), Requests > 0 a measured count
	// instead of a window, Discard a body streamed and dropped.
	Requests int64 `json:"requests,omitempty"`
	Discard  bool  `json:"discard,omitempty"`
}

// mode is the -mode of the peers' servers: HTTP over TLS is the hello
// server with -tls-cert and -tls-key.
func (s Scenario) mode() string {
	if s.Kind == "http" || s.Kind == "https" {
		return "hello"
	}
	return s.Kind
}

// defaultScenarios are the workloads, in the order they are run and
// reported.
func defaultScenarios() []Scenario {
	scs := []Scenario{
		{Name: "echo-1", Kind: "echo", Conns: 1, Size: 64, Desc: "TCP echo, 1 connection, 64 B ping-pong (latency)"},
		{Name: "echo-64", Kind: "echo", Conns: 64, Size: 64, Desc: "TCP echo, 64 connections, 64 B ping-pong"},
		{Name: "echo-1000", Kind: "echo", Conns: 1000, Size: 64, Desc: "TCP echo, 1,000 connections, 64 B ping-pong"},
		{Name: "echo-64-16k", Kind: "echo", Conns: 64, Size: 16 << 10, Desc: "TCP echo, 64 connections, 16 KiB messages"},
		{Name: "http-100", Kind: "http", Conns: 100, Depth: 1, Wrk: true, Desc: "HTTP hello world, 100 keep-alive connections"},
		{Name: "http-100-pipeline16", Kind: "http", Conns: 100, Depth: 16, Desc: "HTTP hello world, 100 connections, 16 pipelined requests each"},
		{Name: "https-100", Kind: "https", Conns: 100, Depth: 1, Wrk: true, Desc: "HTTP hello world over TLS 1.3, 100 keep-alive connections"},
		{Name: "https-handshake", Kind: "https", Conns: 16, Depth: 1, Handshake: true, Desc: "HTTPS hello world, a new connection and full TLS 1.3 handshake per request, 16 clients at a time"},
		{Name: "multi-loop", Kind: "echo", Conns: 64, Size: 64, Loops: 2, Desc: "TCP echo, 64 connections, 64 B, 2 loops on both CPUs (load generator unpinned)"},
	}
	scs = append(scs, clientScenarios()...)
	return append(scs, Scenario{Name: "micro", Kind: "micro", Desc: "loop micro-benchmarks: go test -bench 'BenchmarkDispatch|BenchmarkAddCallback|BenchmarkMillionTimers'"})
}

// Options are the suite's settings, from the command line.
type Options struct {
	Quick    bool          `json:"quick"`
	Only     []string      `json:"only,omitempty"`
	Duration time.Duration `json:"duration"`
	Warmup   time.Duration `json:"warmup"`
	Count    int           `json:"count"`
	Conns    int           `json:"conns,omitempty"` // overrides every network scenario's
	Size     int           `json:"size,omitempty"`  // overrides every echo scenario's
	JSON     string        `json:"-"`
	SVG      string        `json:"-"`
	// BenchTime is -benchtime for the micro-benchmarks ("" = go test's 1s).
	BenchTime string `json:"benchtime,omitempty"`
}

// applyOverrides returns s with -conns/-size applied.
func (o *Options) applyOverrides(s Scenario) Scenario {
	if s.Kind == "micro" {
		return s
	}
	if o.Conns > 0 {
		s.Conns = o.Conns
	}
	if o.Size > 0 && s.Kind == "echo" {
		s.Size = o.Size
	}
	return s
}
