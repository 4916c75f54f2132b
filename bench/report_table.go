package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// writeTable writes the report as markdown: a line naming the machine and
// settings, the verdict (summary table, peak RSS, targets), then one table
// per scenario, the micro-benchmarks and the skipped peers.
func writeTable(w io.Writer, r *Report) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# ioloop benchmark comparison\n\n")
	fmt.Fprintf(&b, "%s, %d CPUs, %s, %s, %s.", m.CPU, m.CPUs, m.Kernel, m.Go, r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, " Median of %s of %v after %v warm-up each, the peers interleaved (every peer once per repetition).",
		plural(r.Options.Count, "run"), r.Options.Duration, r.Options.Warmup)
	if r.Options.Quick {
		b.WriteString(" **Quick smoke run: numbers are indicative only.**")
	}
	b.WriteString("\n")

	writeSummary(&b, r, summarize(r))
	writeClientSummary(&b, r)

	b.WriteString("\n## Detailed results\n\n")
	if m.Pinned {
		b.WriteString("Single-loop scenarios: the server is pinned to one CPU and the load generator to the other. ")
	} else {
		b.WriteString("Fewer than two CPUs: nothing is pinned, server and load generator share the CPU. ")
	}
	b.WriteString("**Server CPU/op** (utime+stime of the server process over the timed window, per operation) is the headline: " +
		"throughput on 2 cores is often bounded by the client. Ratios in these tables are peer ÷ ioloop, of the medians: CPU/op above 1 costs more than ioloop, " +
		"ops/s above 1 is faster. ⚠ marks a load generator above 90% of its CPU: that row's throughput and latency describe the client as much as the server.\n")

	for _, sc := range r.Scenarios {
		switch {
		case sc.Kind == "micro":
		case isClientKind(sc.Kind):
			writeClientTable(&b, r, sc)
		default:
			writeScenarioTable(&b, r, sc)
		}
	}
	writeMicroTable(&b, r)

	var skipped []string
	for _, p := range r.Peers {
		if p.Status != statusOK {
			skipped = append(skipped, fmt.Sprintf("- %s: %s", p.Name, p.Reason))
		}
	}
	if len(skipped) > 0 {
		b.WriteString("\n### Skipped peers\n\n" + strings.Join(skipped, "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeScenarioTable(b *strings.Builder, r *Report, sc Scenario) {
	var cells []Cell
	for _, c := range r.Cells {
		if c.Scenario == sc.Name {
			cells = append(cells, c)
		}
	}
	if len(cells) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### %s: %s\n\n", sc.Name, scenarioShape(sc))
	b.WriteString("| peer | ops/s | p50 | p99 | server CPU/op | peak RSS | loadgen CPU | ops/s ÷ ioloop | CPU/op ÷ ioloop |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	base := r.cell(sc.Name, "ioloop")
	if base != nil && base.Status != statusOK {
		base = nil
	}
	tools := map[string]bool{}
	params := map[string][]string{} // https: negotiated parameters → peers
	for _, c := range cells {
		switch c.Status {
		case statusSkipped:
			fmt.Fprintf(b, "| %s | not measured: %s | | | | | | | |\n", c.Peer, mdEscape(c.Reason))
			continue
		case statusFailed:
			fmt.Fprintf(b, "| %s | **failed**: %s | | | | | | | |\n", c.Peer, mdEscape(c.Reason))
			continue
		}
		if c.TLS != "" {
			params[c.TLS] = append(params[c.TLS], c.Peer)
		}
		tools[c.Tool] = true
		md := c.Median
		warn := ""
		if c.Saturated {
			warn = " ⚠"
		}
		thr, cpu := "n/a", "n/a"
		if base != nil {
			thr = fmtRatio(md.OpsPerSec, base.Median.OpsPerSec)
			cpu = fmtRatio(md.CPUPerOpUs, base.Median.CPUPerOpUs)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %.0f%%%s | %s | %s |\n",
			c.Peer, fmtRate(md.OpsPerSec), fmtMicros(md.P50us), fmtMicros(md.P99us),
			fmtMicros(md.CPUPerOpUs), fmtKiB(c.PeakRSSKiB), md.LoadgenCPUPct, warn, thr, cpu)
	}
	var notes []string
	if sc.Loops > 1 {
		notes = append(notes, fmt.Sprintf("servers run %d loops on both CPUs and the load generator runs unpinned with %d threads; loadgen CPU is of one core (%d%% = all of them)",
			sc.Loops, sc.Loops, 100*sc.Loops))
	}
	if tools["wrk"] {
		notes = append(notes, "timed with "+strings.TrimSpace(r.Machine.Wrk+" (-t1)")+"; responses checked by the built-in generator before timing")
	}
	if sc.Kind == "https" {
		notes = append(notes, tlsNote(sc, params))
	}
	if base == nil {
		notes = append(notes, "no ioloop result in this scenario: ratios n/a")
	}
	if len(notes) > 0 {
		b.WriteString("\nNote: " + strings.Join(notes, "; ") + ".\n")
	}
}

// tlsNote says what the peers of an https scenario negotiated with the
// check's Go client, and how the load was generated.
func tlsNote(sc Scenario, params map[string][]string) string {
	var s string
	switch len(params) {
	case 0:
		s = "no TLS handshake recorded"
	case 1:
		for p := range params {
			s = "every peer negotiated " + p
		}
	default:
		var parts []string
		for p, peers := range params {
			parts = append(parts, p+" ("+strings.Join(peers, ", ")+")")
		}
		sort.Strings(parts)
		s = "⚠ the peers negotiated different parameters: " + strings.Join(parts, "; ")
	}
	s += " with the check's Go client (ECDSA P-256 certificate)"
	if sc.Handshake {
		s += "; every request is a new connection with a full handshake (the clients keep no session cache, and a resumed handshake fails the run), timed with the built-in crypto/tls generator"
	}
	return s
}

func writeMicroTable(b *strings.Builder, r *Report) {
	if len(r.Micro) == 0 && r.MicroError == "" {
		return
	}
	b.WriteString("\n### micro: loop micro-benchmarks (`go test -bench`)\n\n")
	if r.MicroError != "" {
		fmt.Fprintf(b, "Skipped: %s\n", mdEscape(r.MicroError))
		return
	}
	units := map[string]bool{}
	for _, m := range r.Micro {
		for u := range m.Metrics {
			if u != "ns/op" && u != "B/op" && u != "allocs/op" {
				units[u] = true
			}
		}
	}
	extra := make([]string, 0, len(units))
	for u := range units {
		extra = append(extra, u)
	}
	sort.Strings(extra)
	b.WriteString("| benchmark | ns/op | B/op | allocs/op |")
	for _, u := range extra {
		b.WriteString(" " + u + " |")
	}
	b.WriteString("\n|---|--:|--:|--:|" + strings.Repeat("--:|", len(extra)) + "\n")
	for _, m := range r.Micro {
		fmt.Fprintf(b, "| %s | %s | %s | %s |", m.Name, fmtNum(m.Metrics["ns/op"]), fmtNum(m.Metrics["B/op"]), fmtNum(m.Metrics["allocs/op"]))
		for _, u := range extra {
			if v, ok := m.Metrics[u]; ok {
				b.WriteString(" " + fmtNum(v) + " |")
			} else {
				b.WriteString(" |")
			}
		}
		b.WriteString("\n")
	}
	writeMicroNotes(b, r.Micro)
}

// microNotes explain the rows of the micro table, each written when a row
// of its benchmark is there.
var microNotes = []struct{ prefix, text string }{
	{"BenchmarkDispatch/", "BenchmarkDispatch is a socketpair ping-pong, one read and one write per event; " +
		"ns/op and cpu-ns/op (the process's CPU time) are per event, and events/batch is what one epoll_wait " +
		"returned on average (pairs=1: every batch holds one event; pairs=64: 64). `C` is the same loop written " +
		"in C, the baseline. `ioloop` is the loop as shipped: one Go→C call that waits and leaves the batch in " +
		"the C core's buffer, which Go dispatches when the call returns (no C→Go call). " +
		"`ioloop-callback-per-batch` and `ioloop-callback-per-event` are the two other dispatch shapes measured " +
		"against it and not used: the C core calling back into Go once per batch, and once per event"},
	{"BenchmarkAddCallback/", "BenchmarkAddCallback: one op queues one callback and runs it, queued on the " +
		"loop goroutine (from-loop) or from other goroutines while the loop runs (from-goroutines); wakeups/op " +
		"is eventfd writes per callback (wakeups coalesce)"},
	{"BenchmarkMillionTimers", "BenchmarkMillionTimers (libuv's benchmark-million-timers): one op schedules " +
		"a million timers over a millisecond on a new loop and runs them all; ns/timer is per timer"},
}

func writeMicroNotes(b *strings.Builder, ms []MicroResult) {
	var notes []string
	for _, n := range microNotes {
		for _, m := range ms {
			if strings.HasPrefix(m.Name, n.prefix) {
				notes = append(notes, n.text)
				break
			}
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nNotes: " + strings.Join(notes, ". ") + ".\n")
	}
}

func scenarioShape(sc Scenario) string {
	switch sc.Kind {
	case "echo":
		s := fmt.Sprintf("TCP echo, %s, %s ping-pong", plural(sc.Conns, "connection"), fmtBytes(sc.Size))
		if sc.Loops > 1 {
			s += fmt.Sprintf(", %d loops", sc.Loops)
		}
		return s
	case "http":
		s := fmt.Sprintf("HTTP hello world, %s", plural(sc.Conns, "keep-alive connection"))
		if sc.Depth > 1 {
			s += fmt.Sprintf(", %d pipelined requests each", sc.Depth)
		}
		return s
	case "https":
		if sc.Handshake {
			return fmt.Sprintf("HTTPS hello world, a new connection and full TLS 1.3 handshake per request, %s at a time", plural(sc.Conns, "client"))
		}
		return fmt.Sprintf("HTTP hello world over TLS 1.3, %s", plural(sc.Conns, "keep-alive connection"))
	}
	return sc.Desc
}

func fmtRatio(v, base float64) string {
	if base <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v/base)
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// fmtMicros formats a time given in microseconds.
func fmtMicros(us float64) string {
	d := time.Duration(us * 1e3)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", us/1e3)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", us/1e3)
	case us >= 100:
		return fmt.Sprintf("%.0f µs", us)
	}
	return fmt.Sprintf("%.2f µs", us)
}

func fmtKiB(k int64) string {
	if k <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(k)/1024)
}

func fmtBytes(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

func fmtNum(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.2f", v)
}

// mdEscape keeps a reason inside its table cell.
func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
