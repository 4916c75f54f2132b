package main

import (
	"testing"
	"time"
)

const wrkSample = `Running 1s test @ http://127.0.0.1:18090/
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   582.43us  264.28us   2.09ms   85.82%
    Req/Sec    94.65k    15.45k  109.03k    80.00%
  Latency Distribution
     50%  485.00us
     75%  566.00us
     90%    1.00ms
     99%    1.50ms
  94186 requests in 1.01s, 7.01MB read
Requests/sec:  93654.23
Transfer/sec:      6.97MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk([]byte(wrkSample))
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 94186 || r.Seconds != 1.01 {
		t.Errorf("requests %d in %vs, want 94186 in 1.01s", r.Requests, r.Seconds)
	}
	if r.P50 != 485*time.Microsecond || r.P99 != 1500*time.Microsecond {
		t.Errorf("p50 %v p99 %v", r.P50, r.P99)
	}
	if r.Errors != "" {
		t.Errorf("errors %q on a clean run", r.Errors)
	}
}

func TestParseWrkErrors(t *testing.T) {
	out := wrkSample + "  Socket errors: connect 0, read 12, write 0, timeout 0\n  Non-2xx or 3xx responses: 7\n"
	r, err := parseWrk([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != "Socket errors: connect 0, read 12, write 0, timeout 0; Non-2xx or 3xx responses: 7" {
		t.Errorf("errors %q", r.Errors)
	}
	if _, err := parseWrk([]byte("unable to connect to 127.0.0.1:1 Connection refused\n")); err == nil {
		t.Error("no error for a report without requests")
	}
}
