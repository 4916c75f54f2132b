package main

import (
	"fmt"
	"strings"
)

// writeClientSummary writes the HTTP-client verdict (issue 10): ioloop-curl
// against the C libcurl loop and net/http in each client scenario, and the
// targets. Nothing when no client scenario ran.
func writeClientSummary(b *strings.Builder, r *Report) {
	scs := clientRows(r)
	if len(scs) == 0 {
		return
	}
	b.WriteString("\nHTTP clients (issue 10): `" + curlPeer + "` is the curl package on an ioloop loop; `" + curlReferencePeer +
		"` drives the same libcurl from a plain C epoll + timerfd loop, its physical limit. The headline is the **client's** CPU per request " +
		"(utime+stime of the client process over the window); a fixed C server runs on the other CPU. Ratios are ioloop-curl ÷ the peer, per repetition, median kept.\n\n")
	b.WriteString("| scenario | ioloop-curl CPU/request | ÷ C libcurl loop | ÷ net/http client | requests/s |\n|---|--:|--:|--:|--:|\n")
	for _, sc := range scs {
		if sc.Kind != clientKind {
			continue
		}
		a := r.cell(sc.Name, curlPeer)
		if a == nil || a.Status != statusOK {
			reason := "not run"
			if a != nil {
				reason = a.Status + ": " + a.Reason
			}
			fmt.Fprintf(b, "| %s | %s | | | |\n", sc.Name, mdEscape(reason))
			continue
		}
		ratio := func(peer string) string {
			c := r.cell(sc.Name, peer)
			if c == nil || c.Status != statusOK {
				return "–"
			}
			return fmtX(pairedRatio(a, c).Value)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", sc.Name, fmtMicros(a.Median.CPUPerOpUs),
			ratio(curlReferencePeer), ratio(netHTTPClientPeer), fmtRate(a.Median.OpsPerSec))
	}
	fmt.Fprintf(b, "\nTargets of issue 10 (for `%s`):\n\n| target | measured | status |\n|---|---|---|\n", curlPeer)
	for _, t := range clientTargets(r) {
		status := t.Status
		if status != statusNotChecked {
			status = "**" + status + "**"
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", t.Target, mdEscape(t.Measured), status)
	}
}

// writeClientTable writes one client scenario's detailed table.
func writeClientTable(b *strings.Builder, r *Report, sc Scenario) {
	var cells []Cell
	for _, c := range r.Cells {
		if c.Scenario == sc.Name {
			cells = append(cells, c)
		}
	}
	if len(cells) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### %s: %s\n\n", sc.Name, sc.Desc)
	flat := sc.Kind == clientFlatKind
	if flat {
		b.WriteString("One run per peer, by count. RSS and open fds are the client process's, read by itself at the start and at the end of the measured requests.\n\n")
		b.WriteString("| peer | requests | client CPU/request | RSS start → end | open fds start → end |\n|---|--:|--:|--:|--:|\n")
	} else {
		b.WriteString("| peer | requests/s | client CPU/request | peak RSS | server CPU | CPU/request ÷ ioloop-curl |\n|---|--:|--:|--:|--:|--:|\n")
	}
	base := r.cell(sc.Name, curlPeer)
	if base != nil && base.Status != statusOK {
		base = nil
	}
	for _, c := range cells {
		if c.Status != statusOK {
			fmt.Fprintf(b, "| %s | %s: %s |\n", c.Peer, c.Status, mdEscape(c.Reason))
			continue
		}
		if flat {
			run := c.Runs[0]
			fmt.Fprintf(b, "| %s | %s | %s | %s → %s | %d → %d |\n", c.Peer, fmtNum(float64(run.Ops)), fmtMicros(run.CPUPerOpUs),
				fmtKiB(run.RSSStartKiB), fmtKiB(run.RSSEndKiB), run.FDsStart, run.FDsEnd)
			continue
		}
		vs := "1"
		if base == nil {
			vs = "–"
		} else if c.Peer != curlPeer {
			vs = fmtX(pairedRatio(&c, base).Value)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %.0f%% | %s |\n", c.Peer, fmtRate(c.Median.OpsPerSec), fmtMicros(c.Median.CPUPerOpUs),
			fmtKiB(c.PeakRSSKiB), c.Median.LoadgenCPUPct, vs)
	}
	if !flat {
		b.WriteString("\nServer CPU is the fixed C server's share of its CPU during the run: near 100% the server bounds throughput, and CPU/request is still the client's own.\n")
	}
}
