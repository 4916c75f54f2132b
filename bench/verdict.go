package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// The targets of issue 11, which the summary checks.
const (
	// cParity: server CPU per operation within 5% of C epoll's counts as
	// parity (a few percent is within one run's noise on a shared VM).
	cParity = 1.05
	// rssTargetKiB: peak RSS of ioloop's server at echo-1000, about 1 KiB
	// per idle connection over the Go runtime's own baseline.
	rssTargetKiB = 4 << 10
	// Per-event dispatch against the same loop written in C
	// (BenchmarkDispatch, cpu-ns/op): at one event per batch, where the
	// fixed cost of an iteration shows, and at 64.
	dispatchTarget1  = 1.25
	dispatchTarget64 = 1.05
	// rssScenario is where memory per connection shows.
	rssScenario = "echo-1000"
)

// The targets of issue 12 (TLS): server CPU per request at or below Go
// net/http's in both TLS scenarios, and within tlsCTarget of the C/OpenSSL
// server with keep-alive (tlsKeepAliveScenario); the handshake scenario
// measures OpenSSL's handshake code against crypto/tls's rather than the
// loop, so it has no C target.
const (
	tlsCTarget           = 1.15
	tlsKeepAliveScenario = "https-100"
)

// Ratio compares ioloop's server CPU per operation with one peer's in a
// scenario: Value is the median, over the repetitions both completed, of
// ioloop's CPU/op divided by the peer's in the same repetition (the runs
// of a repetition are measured back to back, so drift cancels). Pairs is
// how many repetitions that is; 0 means the runs carried no repetition
// number (results of an older suite) and Value is the ratio of the medians.
type Ratio struct {
	Peer  string  `json:"peer"`
	Value float64 `json:"value"`
	Pairs int     `json:"pairs"`
}

// ScenarioVerdict is one row of the summary: an ioloop row in one scenario.
type ScenarioVerdict struct {
	Scenario   string  `json:"scenario"`
	Peer       string  `json:"peer"` // headlinePeer, or another of our rows
	Headline   bool    `json:"headline"`
	SingleLoop bool    `json:"single_loop"`
	TLS        bool    `json:"tls,omitempty"`     // an https scenario (issue 12)
	Failed     string  `json:"failed,omitempty"`  // the row's failure, if it failed
	Skipped    string  `json:"skipped,omitempty"` // why the row's peer could not take part
	CPUPerOpUs float64 `json:"cpu_per_op_us,omitempty"`
	Runs       int     `json:"runs,omitempty"`
	// VsC is the ratio to the scenario's C reference: C epoll, or the
	// C/OpenSSL server in TLS (Ratio.Peer says which); nil: no result.
	VsC       *Ratio `json:"vs_c,omitempty"`
	VsNetHTTP *Ratio `json:"vs_nethttp,omitempty"` // TLS: Go net/http; nil: no result
	VsGo      *Ratio `json:"vs_go,omitempty"`      // the Go peer ioloop fares worst against; nil: none
	GoPeers   int    `json:"go_peers"`             // Go peers compared
	Text      string `json:"verdict"`
}

// TargetCheck is one target of issue 11 or 12 and whether this run met it.
type TargetCheck struct {
	Issue    int    `json:"issue"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Status   string `json:"status"` // "met", "not met" or "not checked"
}

// PeerRSS is one peer's server peak RSS in rssScenario.
type PeerRSS struct {
	Peer string `json:"peer"`
	KiB  int64  `json:"kib"`
}

// Summary is the verdict the report opens with.
type Summary struct {
	Rows    []ScenarioVerdict `json:"rows"`
	RSS     []PeerRSS         `json:"rss,omitempty"`
	Targets []TargetCheck     `json:"targets"`
}

const (
	statusMet        = "met"
	statusNotMet     = "not met"
	statusNotChecked = "not checked"
)

// summarize compares ioloop with the C reference and the Go peers in every
// scenario and checks the targets of issues 11 and 12.
func summarize(r *Report) Summary {
	var s Summary
	lang := map[string]string{}
	ours := map[string]bool{}
	for _, p := range r.Peers {
		lang[p.Name], ours[p.Name] = p.Lang, p.Ours
	}
	for _, sc := range r.Scenarios {
		if sc.Kind == "micro" || isClientKind(sc.Kind) {
			continue
		}
		// The headline row first, then our other rows in report order.
		var rows []string
		if r.cell(sc.Name, headlinePeer) != nil {
			rows = append(rows, headlinePeer)
		}
		for _, c := range r.Cells {
			if c.Scenario == sc.Name && ours[c.Peer] && c.Peer != headlinePeer {
				rows = append(rows, c.Peer)
			}
		}
		for _, name := range rows {
			s.Rows = append(s.Rows, scenarioVerdict(r, sc, r.cell(sc.Name, name), lang, ours))
		}
	}
	for _, c := range r.Cells {
		if c.Scenario == rssScenario && c.Status == statusOK && c.PeakRSSKiB > 0 {
			s.RSS = append(s.RSS, PeerRSS{c.Peer, c.PeakRSSKiB})
		}
	}
	s.Targets = []TargetCheck{
		checkCParity(r, s.Rows),
		checkGoPeers(r, s.Rows),
		checkRSS(r),
		checkDispatch(r, 1, dispatchTarget1),
		checkDispatch(r, 64, dispatchTarget64),
		checkTLSNetHTTP(r, s.Rows),
		checkTLSC(r, s.Rows),
	}
	for i := range s.Targets {
		if s.Targets[i].Issue == 0 {
			s.Targets[i].Issue = 11
		}
	}
	return s
}

func scenarioVerdict(r *Report, sc Scenario, c *Cell, lang map[string]string, ours map[string]bool) ScenarioVerdict {
	v := ScenarioVerdict{Scenario: sc.Name, Peer: c.Peer, Headline: c.Peer == headlinePeer, SingleLoop: sc.Loops <= 1, TLS: sc.Kind == "https"}
	switch c.Status {
	case statusOK:
	case statusSkipped:
		v.Skipped = c.Reason
		v.Text = "not measured: " + truncate(oneLine(c.Reason), 80)
		return v
	default:
		v.Failed = c.Reason
		v.Text = "failed: " + truncate(oneLine(c.Reason), 80)
		return v
	}
	v.CPUPerOpUs, v.Runs = c.Median.CPUPerOpUs, len(c.Runs)
	refPeer, refName, parity := referencePeer, "C epoll", "at C parity"
	if v.TLS {
		refPeer, refName, parity = referenceTLSPeer, "C/OpenSSL", "at C/OpenSSL parity"
		if o := r.cell(sc.Name, netHTTPPeer); o != nil && o.Status == statusOK {
			v.VsNetHTTP = pairedRatio(c, o)
		}
	}
	if ref := r.cell(sc.Name, refPeer); ref != nil && ref.Status == statusOK {
		v.VsC = pairedRatio(c, ref)
	}
	for _, o := range r.Cells {
		if o.Scenario != sc.Name || o.Status != statusOK || lang[o.Peer] != "go" || ours[o.Peer] {
			continue
		}
		v.GoPeers++
		if q := pairedRatio(c, &o); v.VsGo == nil || q.Value > v.VsGo.Value {
			v.VsGo = q
		}
	}
	var parts []string
	if v.VsC != nil {
		parts = append(parts, standing(v.VsC.Value, refName, parity, cParity))
	}
	if v.VsNetHTTP != nil && (v.VsGo == nil || v.VsGo.Peer != netHTTPPeer) {
		parts = append(parts, standing(v.VsNetHTTP.Value, "net/http", "level with net/http", 1))
	}
	if v.VsGo != nil {
		if v.VsGo.Value < 1 {
			parts = append(parts, fmt.Sprintf("ahead of every Go peer (closest: %s, %s)", v.VsGo.Peer, fmtX(v.VsGo.Value)))
		} else {
			parts = append(parts, standing(v.VsGo.Value, v.VsGo.Peer, "level with "+v.VsGo.Peer, 1))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no "+refName+" or Go peer result to compare with")
	}
	v.Text = strings.Join(parts, "; ")
	return v
}

// standing words ratio (ioloop ÷ peer): within [1/tol, tol] it is level;
// otherwise ahead of or behind peer by the difference in percent.
func standing(ratio float64, peer, level string, tol float64) string {
	pct := math.Round(math.Abs(ratio-1) * 100)
	switch {
	case ratio > tol && pct > 0:
		return fmt.Sprintf("behind %s by %.0f%%", peer, pct)
	case ratio < 1/tol && pct > 0:
		return fmt.Sprintf("ahead of %s by %.0f%%", peer, pct)
	}
	return level
}

// pairedRatio compares a's CPU/op with b's repetition by repetition (see
// Ratio).
func pairedRatio(a, b *Cell) *Ratio {
	byRep := map[int]float64{}
	for _, run := range b.Runs {
		if run.Rep > 0 && run.CPUPerOpUs > 0 {
			byRep[run.Rep] = run.CPUPerOpUs
		}
	}
	var qs []float64
	for _, run := range a.Runs {
		if d, ok := byRep[run.Rep]; ok && run.Rep > 0 {
			qs = append(qs, run.CPUPerOpUs/d)
		}
	}
	if len(qs) == 0 {
		q := 0.0
		if b.Median.CPUPerOpUs > 0 {
			q = a.Median.CPUPerOpUs / b.Median.CPUPerOpUs
		}
		return &Ratio{Peer: b.Peer, Value: q}
	}
	return &Ratio{Peer: b.Peer, Value: median(qs), Pairs: len(qs)}
}

// checkCParity: ≤ cParity × C epoll in every single-loop scenario.
func checkCParity(r *Report, rows []ScenarioVerdict) TargetCheck {
	t := TargetCheck{Target: fmt.Sprintf("server CPU/op ≤ %.2f× C epoll in every single-loop scenario", cParity)}
	var within, over, unchecked []string
	for _, v := range rows {
		switch {
		case !v.Headline || !v.SingleLoop || v.TLS:
		case v.Failed != "":
			over = append(over, v.Scenario+" failed")
		case v.VsC == nil:
			unchecked = append(unchecked, v.Scenario)
		case v.VsC.Value > cParity:
			over = append(over, fmt.Sprintf("%s %s", v.Scenario, fmtX(v.VsC.Value)))
		default:
			within = append(within, v.Scenario)
		}
	}
	return tally(t, len(within), over, unchecked, notRun(r, rows, true), "within", "no C epoll result")
}

// checkGoPeers: ahead of every Go peer in every scenario.
func checkGoPeers(r *Report, rows []ScenarioVerdict) TargetCheck {
	t := TargetCheck{Target: "ahead of every Go peer (less server CPU/op) in every scenario"}
	var ahead, behind, unchecked []string
	for _, v := range rows {
		switch {
		case !v.Headline || v.TLS:
		case v.Failed != "":
			behind = append(behind, v.Scenario+" failed")
		case v.VsGo == nil:
			unchecked = append(unchecked, v.Scenario)
		case v.VsGo.Value >= 1:
			behind = append(behind, fmt.Sprintf("%s (%s %s)", v.Scenario, v.VsGo.Peer, fmtX(v.VsGo.Value)))
		default:
			ahead = append(ahead, v.Scenario)
		}
	}
	return tally(t, len(ahead), behind, unchecked, notRun(r, rows, false), "ahead", "no Go peer result")
}

// notRun lists the suite's scenarios an issue 11 target covers (the
// single-loop ones only, or every plaintext network scenario) that have no
// headline row in this run (left out with -only): a target met elsewhere is
// then not checked.
func notRun(r *Report, rows []ScenarioVerdict, singleLoopOnly bool) []string {
	return missingRows(rows, func(sc Scenario) bool {
		return sc.Kind != "micro" && sc.Kind != "https" && !isClientKind(sc.Kind) && (!singleLoopOnly || sc.Loops <= 1)
	})
}

// missingRows lists the default scenarios for which covers is true that
// have no headline row.
func missingRows(rows []ScenarioVerdict, covers func(Scenario) bool) []string {
	var missing []string
	for _, sc := range defaultScenarios() {
		if !covers(sc) {
			continue
		}
		if !slices.ContainsFunc(rows, func(v ScenarioVerdict) bool { return v.Headline && v.Scenario == sc.Name }) {
			missing = append(missing, sc.Name)
		}
	}
	return missing
}

// tally fills in a per-scenario target: not met if any scenario misses
// it, else not checked if any could not be compared or was not run, else
// met.
func tally(t TargetCheck, good int, bad, unchecked, missing []string, goodWord, uncheckedWhy string) TargetCheck {
	total := good + len(bad) + len(unchecked)
	if total == 0 {
		t.Status, t.Measured = statusNotChecked, "no scenario run"
		return t
	}
	t.Measured = fmt.Sprintf("%d of %s %s", good, plural(total, "scenario"), goodWord)
	if len(bad) > 0 {
		t.Measured += "; not: " + strings.Join(bad, ", ")
	}
	if len(unchecked) > 0 {
		t.Measured += fmt.Sprintf("; %s: %s", uncheckedWhy, strings.Join(unchecked, ", "))
	}
	if len(missing) > 0 {
		t.Measured += "; not run: " + strings.Join(missing, ", ")
	}
	switch {
	case len(bad) > 0:
		t.Status = statusNotMet
	case len(unchecked) > 0 || len(missing) > 0:
		t.Status = statusNotChecked
	default:
		t.Status = statusMet
	}
	return t
}

// checkTLSNetHTTP: server CPU/op at or below Go net/http's in every TLS
// scenario (issue 12).
func checkTLSNetHTTP(r *Report, rows []ScenarioVerdict) TargetCheck {
	t := TargetCheck{Issue: 12, Target: "server CPU/op ≤ Go net/http's in both TLS scenarios (https-100, https-handshake)"}
	return checkTLS(r, t, rows, func(sc Scenario) bool { return sc.Kind == "https" },
		func(v ScenarioVerdict) *Ratio { return v.VsNetHTTP }, 1, "at or below", "no net/http result")
}

// checkTLSC: within tlsCTarget of the C/OpenSSL server with keep-alive
// (issue 12).
func checkTLSC(r *Report, rows []ScenarioVerdict) TargetCheck {
	t := TargetCheck{Issue: 12, Target: fmt.Sprintf("server CPU/op ≤ %.2f× the C/OpenSSL server's with keep-alive (%s)", tlsCTarget, tlsKeepAliveScenario)}
	return checkTLS(r, t, rows, func(sc Scenario) bool { return sc.Name == tlsKeepAliveScenario },
		func(v ScenarioVerdict) *Ratio { return v.VsC }, tlsCTarget, "within", "no C/OpenSSL result")
}

// checkTLS tallies the headline rows of the scenarios covers selects by
// ratio(row) ≤ limit. A row ioloop could not take part in (no TLS yet)
// leaves the target not checked, with the peer's reason.
func checkTLS(r *Report, t TargetCheck, rows []ScenarioVerdict, covers func(Scenario) bool, ratio func(ScenarioVerdict) *Ratio,
	limit float64, goodWord, noPeer string) TargetCheck {
	var good int
	var bad, skipped, unpaired []string
	skipReason := ""
	for _, v := range rows {
		if sc := r.scenario(v.Scenario); !v.Headline || sc == nil || !covers(*sc) {
			continue
		}
		q := ratio(v)
		switch {
		case v.Failed != "":
			bad = append(bad, v.Scenario+" failed")
		case v.Skipped != "":
			skipped, skipReason = append(skipped, v.Scenario), v.Skipped
		case q == nil:
			unpaired = append(unpaired, v.Scenario)
		case q.Value > limit:
			bad = append(bad, fmt.Sprintf("%s %s", v.Scenario, fmtX(q.Value)))
		default:
			good++
		}
	}
	unchecked, why := unpaired, noPeer
	if len(skipped) > 0 {
		// One reason is enough: the same program skipped each.
		unchecked, why = append(skipped, unpaired...), headlinePeer+" not measured ("+truncate(oneLine(skipReason), 100)+")"
	}
	return tally(t, good, bad, unchecked, missingRows(rows, covers), goodWord, why)
}

func checkRSS(r *Report) TargetCheck {
	t := TargetCheck{Target: fmt.Sprintf("peak RSS of the server at %s ≤ %s", rssScenario, fmtKiB(rssTargetKiB))}
	c := r.cell(rssScenario, headlinePeer)
	switch {
	case c == nil:
		t.Status, t.Measured = statusNotChecked, rssScenario+" not run"
	case c.Status != statusOK || c.PeakRSSKiB <= 0:
		t.Status, t.Measured = statusNotChecked, "no measurement ("+headlinePeer+" failed there)"
	default:
		t.Measured = fmtKiB(c.PeakRSSKiB)
		if sc := r.scenario(rssScenario); sc != nil && sc.Conns != 1000 {
			t.Measured += fmt.Sprintf(" with %d connections (-conns), not 1,000", sc.Conns)
			t.Status = statusNotChecked
		} else if c.PeakRSSKiB <= rssTargetKiB {
			t.Status = statusMet
		} else {
			t.Status = statusNotMet
		}
	}
	return t
}

// checkDispatch compares BenchmarkDispatch/ioloop with BenchmarkDispatch/C
// at pairs events per batch, by CPU time per event.
func checkDispatch(r *Report, pairs int, target float64) TargetCheck {
	batch := fmt.Sprintf("%d events per batch", pairs)
	if pairs == 1 {
		batch = "one event per batch"
	}
	t := TargetCheck{Target: fmt.Sprintf("dispatch ≤ %.2f× the C loop at %s", target, batch)}
	suffix := fmt.Sprintf("/pairs=%d", pairs)
	var c, ours *MicroResult
	for i := range r.Micro {
		switch r.Micro[i].Name {
		case "BenchmarkDispatch/C" + suffix:
			c = &r.Micro[i]
		case "BenchmarkDispatch/ioloop" + suffix:
			ours = &r.Micro[i]
		}
	}
	if c == nil || ours == nil {
		t.Status, t.Measured = statusNotChecked, "micro-benchmarks not run"
		if r.MicroError != "" {
			t.Measured = "micro-benchmarks failed"
		}
		return t
	}
	unit := "cpu-ns/op"
	if c.Metrics[unit] <= 0 || ours.Metrics[unit] <= 0 {
		unit = "ns/op"
	}
	if c.Metrics[unit] <= 0 {
		t.Status, t.Measured = statusNotChecked, "no "+unit+" for the C loop"
		return t
	}
	q := ours.Metrics[unit] / c.Metrics[unit]
	t.Measured = fmt.Sprintf("%s (%s against %s %s)", fmtX(q), fmtNum(ours.Metrics[unit]), fmtNum(c.Metrics[unit]), unit)
	if q <= target {
		t.Status = statusMet
	} else {
		t.Status = statusNotMet
	}
	return t
}

// writeSummary writes the verdict: the per-scenario table, peak RSS in
// rssScenario, and the targets.
func writeSummary(b *strings.Builder, r *Report, s Summary) {
	b.WriteString("\n## Verdict\n\n")
	b.WriteString("`" + headlinePeer + "`: the library like for like (`peers/ioloop` on the public API, doing what every other peer does; " +
		"in HTTP it answers each request head with a fixed response, as they do). " +
		"A ratio is ioloop's server CPU/op ÷ the peer's, per repetition (both measured in the same round), median kept: below 1, ioloop spends less. " +
		"The best Go peer is the one ioloop compares worst with. " +
		"`ioloop-hello` rows (examples/hello, which parses every request line and header) are for comparison, not held to the targets. ")
	b.WriteString(runsSentence(r) + "\n\n")
	var plain, tls []ScenarioVerdict
	for _, v := range s.Rows {
		if v.TLS {
			tls = append(tls, v)
		} else {
			plain = append(plain, v)
		}
	}
	if len(plain) > 0 || len(tls) == 0 {
		b.WriteString("| scenario | ioloop CPU/op | ÷ C epoll | ÷ best Go peer | verdict |\n")
		b.WriteString("|---|--:|--:|--:|---|\n")
		for _, v := range plain {
			writeVerdictRow(b, v, false)
		}
	}
	if len(tls) > 0 {
		if len(plain) > 0 {
			b.WriteString("\n")
		}
		b.WriteString("TLS 1.3 (issue 12): the C reference is `" + referenceTLSPeer + "` (C epoll + OpenSSL, set up like crypto/tls's defaults); " +
			"Go net/http is the target's other yardstick; the Go peers are gonet (crypto/tls), nethttp and nbio (llib's TLS).\n\n")
		b.WriteString("| scenario | ioloop CPU/op | ÷ C/OpenSSL | ÷ Go net/http | ÷ best Go peer | verdict |\n")
		b.WriteString("|---|--:|--:|--:|--:|---|\n")
		for _, v := range tls {
			writeVerdictRow(b, v, true)
		}
	}
	if len(s.RSS) > 0 {
		fmt.Fprintf(b, "\nPeak RSS of each server process at %s (VmHWM from /proc, over its check and every run; the load generator is another process):\n\n", rssScenario)
		var head, rule, vals strings.Builder
		head.WriteString("|")
		rule.WriteString("|")
		vals.WriteString("|")
		for _, p := range s.RSS {
			head.WriteString(" " + p.Peer + " |")
			rule.WriteString("--:|")
			vals.WriteString(" " + fmtKiB(p.KiB) + " |")
		}
		b.WriteString(head.String() + "\n" + rule.String() + "\n" + vals.String() + "\n")
	}
	for _, issue := range []int{11, 12} {
		fmt.Fprintf(b, "\nTargets of issue %d (for `%s`):\n\n", issue, headlinePeer)
		b.WriteString("| target | measured | status |\n|---|---|---|\n")
		for _, t := range s.Targets {
			if t.Issue != issue {
				continue
			}
			status := t.Status
			if status != statusNotChecked {
				status = "**" + status + "**"
			}
			fmt.Fprintf(b, "| %s | %s | %s |\n", t.Target, mdEscape(t.Measured), status)
		}
	}
}

// writeVerdictRow writes one row of a verdict table; tls rows have the
// net/http column.
func writeVerdictRow(b *strings.Builder, v ScenarioVerdict, tls bool) {
	name := v.Scenario
	if !v.Headline {
		name += " · " + v.Peer
	}
	empty := " | | |"
	if tls {
		empty = " | | | |"
	}
	switch {
	case v.Failed != "":
		fmt.Fprintf(b, "| %s | **failed**%s %s |\n", name, empty, mdEscape(v.Text))
		return
	case v.Skipped != "":
		fmt.Fprintf(b, "| %s | not measured%s %s |\n", name, empty, mdEscape(v.Text))
		return
	}
	ratio := func(q *Ratio) string {
		if q == nil {
			return "–"
		}
		return fmtX(q.Value)
	}
	vsGo := ratio(v.VsGo)
	if v.VsGo != nil {
		vsGo += " (" + v.VsGo.Peer + ")"
	}
	if tls {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", name, fmtMicros(v.CPUPerOpUs), ratio(v.VsC), ratio(v.VsNetHTTP), vsGo, mdEscape(v.Text))
	} else {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", name, fmtMicros(v.CPUPerOpUs), ratio(v.VsC), vsGo, mdEscape(v.Text))
	}
}

// runsSentence says how many runs each median has, and how they were
// ordered.
func runsSentence(r *Report) string {
	counts := map[int]int{}
	for _, c := range r.Cells {
		if c.Status == statusOK {
			counts[len(c.Runs)]++
		}
	}
	s := fmt.Sprintf("Each median is of %s of %v, interleaved: every peer of a scenario runs once per repetition, in table order.",
		plural(r.Options.Count, "run"), r.Options.Duration)
	if len(counts) > 1 || (len(counts) == 1 && counts[r.Options.Count] == 0) {
		var ns []int
		for n := range counts {
			ns = append(ns, n)
		}
		slices.Sort(ns)
		var parts []string
		for _, n := range ns {
			parts = append(parts, fmt.Sprintf("%d cell(s) with %d", counts[n], n))
		}
		s += " Runs per cell differ: " + strings.Join(parts, ", ") + "."
	}
	return s
}

// fmtX formats a ratio as "1.07×".
func fmtX(q float64) string {
	return fmt.Sprintf("%.2f×", q)
}

// scenario returns the scenario named name, if it was run.
func (r *Report) scenario(name string) *Scenario {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name {
			return &r.Scenarios[i]
		}
	}
	return nil
}
