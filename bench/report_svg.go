package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// The chart is plain SVG written by hand (no dependency): one group per
// scenario, one row per peer, with two bars each — server CPU per operation
// (the headline, lower is better) and throughput (higher is better) — each
// scaled to the scenario's largest value and labelled with its number.
const (
	svgWidth  = 1000
	svgLabelX = 120 // right edge of the peer names
	svgBar1X  = 130
	svgBar2X  = 570
	svgBarMax = 330
	svgRowH   = 20
	svgCPUCap = 4
)

// peerColors: ioloop stands out, the C reference is dark, the rest share hues.
var peerColors = map[string]string{
	"ioloop": "#d9480f", "ioloop-hello": "#ff922b", "cepoll": "#343a40", "libevent": "#868e96", "copenssl": "#495057",
	"gonet": "#1c7ed6", "nethttp": "#364fc7", "gnet": "#4dabf7", "evio": "#0ca678", "nbio": "#63e6be", "tornado": "#ae3ec9",
}

func peerColor(name string) string {
	if c, ok := peerColors[name]; ok {
		return c
	}
	return "#74c0fc"
}

type svgWriter struct {
	b bytes.Buffer
}

func (s *svgWriter) text(x, y float64, anchor, style, body string) {
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s"%s>`, x, y, anchor, style)
	_ = xml.EscapeText(&s.b, []byte(body))
	s.b.WriteString("</text>\n")
}

func (s *svgWriter) rect(x, y, w, h float64, fill string) {
	fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, w, h, fill)
}

func writeSVG(w io.Writer, r *Report) error {
	var body svgWriter
	y := 0.0
	m := r.Machine
	body.text(10, 24, "start", ` font-size="18" font-weight="bold"`, "ioloop benchmark comparison")
	body.text(10, 44, "start", ` font-size="12" fill="#495057"`,
		fmt.Sprintf("%s, %d CPUs, %s, %s, %s; median of %s of %v, the peers interleaved", m.CPU, m.CPUs, m.Kernel, m.Go,
			r.Started.UTC().Format("2006-01-02"), plural(r.Options.Count, "run"), r.Options.Duration))
	y = 60
	for _, sc := range r.Scenarios {
		if sc.Kind == "micro" {
			continue
		}
		var cells []Cell
		for _, c := range r.Cells {
			if c.Scenario == sc.Name {
				cells = append(cells, c)
			}
		}
		if len(cells) == 0 {
			continue
		}
		y = svgScenario(&body, y, sc, cells)
	}
	if len(r.Micro) > 0 {
		y = svgMicro(&body, y, r.Micro)
	}
	height := y + 10
	var out bytes.Buffer
	fmt.Fprintf(&out, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&out, `<rect x="0" y="0" width="%d" height="%.0f" fill="#ffffff"/>`+"\n", svgWidth, height)
	out.Write(body.b.Bytes())
	out.WriteString("</svg>\n")
	_, err := w.Write(out.Bytes())
	return err
}

func svgScenario(s *svgWriter, y float64, sc Scenario, cells []Cell) float64 {
	fmt.Fprintf(&s.b, `<g class="scenario" id="%s">`+"\n", xmlAttr(sc.Name))
	s.text(10, y+20, "start", ` font-size="14" font-weight="bold"`, sc.Name+": "+scenarioShape(sc))
	cpuLabel := "server CPU per operation (lower is better)"
	if isClientKind(sc.Kind) {
		cpuLabel = "client CPU per request (lower is better)"
	}
	s.text(svgBar1X, y+38, "start", ` fill="#495057"`, cpuLabel)
	s.text(svgBar2X, y+38, "start", ` fill="#495057"`, "throughput, ops/s (higher is better)")
	var maxCPU, minCPU, maxOps float64
	for _, c := range cells {
		if c.Status == statusOK {
			maxCPU = max(maxCPU, c.Median.CPUPerOpUs)
			if minCPU == 0 || c.Median.CPUPerOpUs < minCPU {
				minCPU = c.Median.CPUPerOpUs
			}
			maxOps = max(maxOps, c.Median.OpsPerSec)
		}
	}
	// One peer at 30x the others (Tornado) would flatten every other bar:
	// the CPU scale stops at svgCPUCap times the cheapest peer, and longer
	// bars end in a break mark.
	if minCPU > 0 && maxCPU > svgCPUCap*minCPU {
		maxCPU = svgCPUCap * minCPU
	}
	row := y + 46
	for _, c := range cells {
		s.text(svgLabelX, row+12, "end", "", c.Peer)
		switch c.Status {
		case statusSkipped:
			s.text(svgBar1X, row+12, "start", ` fill="#868e96"`, "not measured: "+truncate(c.Reason, 104))
			row += svgRowH
			continue
		case statusFailed:
			s.text(svgBar1X, row+12, "start", ` fill="#c92a2a"`, "failed: "+truncate(c.Reason, 110))
			row += svgRowH
			continue
		}
		col := peerColor(c.Peer)
		w1 := scaleBar(c.Median.CPUPerOpUs, maxCPU)
		s.rect(svgBar1X, row+1, w1, 14, col)
		if c.Median.CPUPerOpUs > maxCPU {
			fmt.Fprintf(&s.b, `<path class="break" d="M%.1f %.1f l6 -16 M%.1f %.1f l6 -16" stroke="#ffffff" stroke-width="3"/>`+"\n",
				svgBar1X+w1-24, row+16, svgBar1X+w1-16, row+16)
		}
		s.text(svgBar1X+w1+4, row+12, "start", "", fmtMicros(c.Median.CPUPerOpUs))
		w2 := scaleBar(c.Median.OpsPerSec, maxOps)
		s.rect(svgBar2X, row+1, w2, 14, col)
		label := fmtRate(c.Median.OpsPerSec)
		if c.Saturated {
			label += " (client-bound)"
		}
		s.text(svgBar2X+w2+4, row+12, "start", "", label)
		row += svgRowH
	}
	s.b.WriteString("</g>\n")
	return row + 12
}

// svgMicro draws the micro-benchmarks, each scaled within its family (the
// name up to the first '/'): a million timers and one dispatch differ by
// five orders of magnitude, the variants of one benchmark do not.
func svgMicro(s *svgWriter, y float64, ms []MicroResult) float64 {
	s.b.WriteString(`<g class="scenario" id="micro">` + "\n")
	s.text(10, y+20, "start", ` font-size="14" font-weight="bold"`, "micro: loop micro-benchmarks, ns/op (lower is better; bars scaled per benchmark)")
	family := func(name string) string {
		f, _, _ := strings.Cut(name, "/")
		return f
	}
	maxNs := map[string]float64{}
	for _, m := range ms {
		f := family(m.Name)
		maxNs[f] = max(maxNs[f], m.Metrics["ns/op"])
	}
	row := y + 30
	for _, m := range ms {
		ns := m.Metrics["ns/op"]
		s.text(10, row+12, "start", "", m.Name)
		w := scaleBar(ns, maxNs[family(m.Name)])
		s.rect(svgBar2X-130, row+1, w, 14, peerColor("ioloop"))
		s.text(svgBar2X-130+w+4, row+12, "start", "", fmtNum(ns)+" ns/op")
		row += svgRowH
	}
	s.b.WriteString("</g>\n")
	return row + 12
}

// scaleBar is v's bar length on a scale whose full width is maxV; values
// past maxV get the full width.
func scaleBar(v, maxV float64) float64 {
	if maxV <= 0 || v <= 0 {
		return 0
	}
	return min(svgBarMax, max(1, v/maxV*svgBarMax))
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func xmlAttr(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
