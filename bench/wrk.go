package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what the suite reads from wrk's --latency report.
type wrkResult struct {
	Requests int64
	Seconds  float64
	P50, P99 time.Duration
	// Errors: socket errors and non-2xx/3xx responses, which mean the
	// peer is not serving keep-alive correctly.
	Errors string
}

// parseWrk reads wrk 4's text report. Requests and duration come from the
// "N requests in Xs" line rather than Requests/sec, so ops/s uses the same
// window as the server CPU sample.
func parseWrk(out []byte) (wrkResult, error) {
	var r wrkResult
	var errs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	inDist := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case line == "Latency Distribution":
			inDist = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			switch f[0] {
			case "50%", "50.000%":
				r.P50 = d
			case "99%", "99.000%":
				r.P99 = d
			}
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			inDist = false
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: requests %q", f[0])
			}
			d, err := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, err
			}
			r.Requests, r.Seconds = n, d.Seconds()
		case strings.HasPrefix(line, "Socket errors:"):
			errs = append(errs, line)
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			errs = append(errs, line)
		}
	}
	if r.Requests == 0 || r.Seconds == 0 {
		return r, fmt.Errorf("wrk: no \"N requests in T\" line in its output")
	}
	r.Errors = strings.Join(errs, "; ")
	return r, nil
}

// parseWrkDuration reads wrk's units: us, ms, s, m, h.
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		d      time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				break
			}
			return time.Duration(x * float64(u.d)), nil
		}
	}
	return 0, fmt.Errorf("wrk: duration %q", s)
}
