package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// LoadConfig is one load generator run. The suite passes it as JSON to a
// child process of its own binary (-loadgen), pinned to the CPU the server
// does not use; the correctness check and the tests call runLoad in-process.
type LoadConfig struct {
	Mode     string        `json:"mode"`  // "echo", "http" or "https" (HTTP over TLS)
	Addr     string        `json:"addr"`  // host:port
	Conns    int           `json:"conns"` // connections, spread over Workers
	Size     int           `json:"size"`  // echo message bytes
	Depth    int           `json:"depth"` // http requests in flight per connection
	Workers  int           `json:"workers"`
	Warmup   time.Duration `json:"warmup"`
	Duration time.Duration `json:"duration"` // timed window; with MaxOps, a time limit
	// MaxOps > 0 stops each connection after that many operations and makes
	// the run a check: every operation counts, and not finishing within
	// Duration is an error.
	MaxOps int64 `json:"max_ops,omitempty"`
	// ServerPID > 0: the server's CPU time is sampled at the edges of the
	// timed window, by the thread that sees the edge first.
	ServerPID int `json:"server_pid,omitempty"`
	// Body, if set, is the exact body every HTTP response must carry.
	Body string `json:"body,omitempty"`
	// Handshake (https): every request on a new connection, with a full
	// handshake; Conns is then how many run concurrently.
	Handshake bool `json:"handshake,omitempty"`
	// CAFile (https): verify the server's certificate against this root.
	// Empty: no verification, as wrk does (the timed runs).
	CAFile string `json:"ca_file,omitempty"`
}

// LoadResult is what one run measured over its timed window.
type LoadResult struct {
	Ops        int64   `json:"ops"`
	Seconds    float64 `json:"seconds"`
	P50ns      int64   `json:"p50_ns"`
	P99ns      int64   `json:"p99_ns"`
	ServerCPU  float64 `json:"server_cpu_s"`  // utime+stime of ServerPID over the window
	LoadgenCPU float64 `json:"loadgen_cpu_s"` // this process's utime+stime over the window
	// AllOps counts every operation, priming and warm-up included: a
	// diagnostic for a window that counted none.
	AllOps int64 `json:"all_ops"`
	// TLS (https) is what the handshakes negotiated: "TLS 1.3,
	// TLS_AES_128_GCM_SHA256, X25519", several joined by " | " if they
	// differed. Handshakes counts them, all phases; none was resumed (a
	// resumed one fails the run).
	TLS        string `json:"tls,omitempty"`
	Handshakes int64  `json:"handshakes,omitempty"`
	Err        string `json:"error,omitempty"`
}

func (c *LoadConfig) validate() error {
	switch {
	case c.Mode != "echo" && c.Mode != "http" && c.Mode != "https":
		return fmt.Errorf("loadgen: mode %q, want echo, http or https", c.Mode)
	case c.Mode == "https" && c.Depth > 1:
		return fmt.Errorf("loadgen: https runs one request at a time per connection, not %d", c.Depth)
	case c.Conns < 1:
		return fmt.Errorf("loadgen: %d connections", c.Conns)
	case c.Mode == "echo" && c.Size < 1:
		return fmt.Errorf("loadgen: echo size %d", c.Size)
	case c.Duration <= 0:
		return fmt.Errorf("loadgen: duration %v", c.Duration)
	}
	if c.Depth < 1 {
		c.Depth = 1
	}
	if c.Workers < 1 {
		c.Workers = 1
	}
	if c.Workers > c.Conns {
		c.Workers = c.Conns
	}
	return nil
}

// checkOps is how many operations a MaxOps run completes: each connection
// stops after the batch that reaches MaxOps (a batch is Depth requests).
func (c *LoadConfig) checkOps() int64 {
	depth := int64(max(c.Depth, 1))
	per := (c.MaxOps + depth - 1) / depth * depth
	return per * int64(c.Conns)
}

// loadgenMain is the child process: run, print the result as JSON on stdout.
// A failed run still prints its result (with Err) so the parent can report
// what happened; the exit code says whether it failed.
func loadgenMain(cfgJSON string) int {
	var cfg LoadConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: bad config:", err)
		return 2
	}
	res, err := runLoad(cfg)
	if err != nil {
		res.Err = err.Error()
	}
	if jerr := json.NewEncoder(os.Stdout).Encode(res); jerr != nil {
		return 2
	}
	if err != nil {
		return 1
	}
	return 0
}
