package main

import "time"

// Run is one timed window of one peer in one scenario.
type Run struct {
	Rep           int     `json:"rep"` // the repetition (1-based): runs of one rep are measured back to back
	Ops           int64   `json:"ops"`
	Seconds       float64 `json:"seconds"`
	OpsPerSec     float64 `json:"ops_per_sec"`
	P50us         float64 `json:"p50_us"`
	P99us         float64 `json:"p99_us"`
	ServerCPUSec  float64 `json:"server_cpu_s"`
	CPUPerOpUs    float64 `json:"server_cpu_per_op_us"`
	LoadgenCPUPct float64 `json:"loadgen_cpu_pct"` // of one core
	// HTTP-client scenarios (clients.go): the measured process is the
	// client, so ServerCPUSec and CPUPerOpUs are its, LoadgenCPUPct is the
	// fixed server's; the client's RSS and open fds at both ends of the
	// measured requests.
	RSSStartKiB int64 `json:"rss_start_kib,omitempty"`
	RSSEndKiB   int64 `json:"rss_end_kib,omitempty"`
	FDsStart    int   `json:"fds_start,omitempty"`
	FDsEnd      int   `json:"fds_end,omitempty"`
}

// Cell is one peer in one scenario: its runs and their per-metric medians.
type Cell struct {
	Scenario     string `json:"scenario"`
	Peer         string `json:"peer"`
	Status       string `json:"status"` // "ok", "failed", or "skipped" (the peer cannot serve this scenario)
	Reason       string `json:"reason,omitempty"`
	Tool         string `json:"tool"` // "loadgen" or "wrk"
	Runs         []Run  `json:"runs"`
	Median       Run    `json:"median"`
	PeakRSSKiB   int64  `json:"peak_rss_kib"`
	LoadgenCores int    `json:"loadgen_cores"` // cores the load generator had
	Saturated    bool   `json:"loadgen_saturated"`
	// TLS (https) is what the check's handshakes negotiated, as the
	// suite's Go client saw them: "TLS 1.3, TLS_AES_128_GCM_SHA256, X25519".
	TLS string `json:"tls,omitempty"`
}

// PeerInfo is a peer's build outcome.
type PeerInfo struct {
	Name   string `json:"name"`
	Desc   string `json:"desc"`
	Lang   string `json:"lang"`           // "c", "go" or "python"
	Ours   bool   `json:"ours,omitempty"` // one of this project's rows
	Status string `json:"status"`         // "ok" or "skipped"
	Reason string `json:"reason,omitempty"`
}

// Machine names what the numbers were measured on.
type Machine struct {
	CPU    string `json:"cpu"`
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	Pinned bool   `json:"pinned"` // server and load generator on separate CPUs
	Wrk    string `json:"wrk,omitempty"`
}

// Report is everything one invocation measured; -json writes it as is.
type Report struct {
	Machine    Machine       `json:"machine"`
	Options    Options       `json:"options"`
	Started    time.Time     `json:"started"`
	Finished   time.Time     `json:"finished"`
	Scenarios  []Scenario    `json:"scenarios"`
	Peers      []PeerInfo    `json:"peers"`
	Cells      []Cell        `json:"cells"`
	Micro      []MicroResult `json:"micro,omitempty"`
	MicroError string        `json:"micro_error,omitempty"`
	// Summary is the verdict of the table's first section, for scripts
	// (written by the suite; the table recomputes it from the cells).
	Summary *Summary `json:"summary,omitempty"`
}

// Cell statuses.
const (
	statusOK      = "ok"
	statusFailed  = "failed"
	statusSkipped = "skipped"
)

// saturationPct is where the load generator counts as the bottleneck: above
// it, throughput and latency describe the client as much as the server
// (server CPU per operation stays meaningful).
const saturationPct = 90

// medianRun takes each metric's median over the runs independently.
func medianRun(runs []Run) Run {
	pick := func(f func(Run) float64) float64 {
		vs := make([]float64, len(runs))
		for i, r := range runs {
			vs[i] = f(r)
		}
		return median(vs)
	}
	return Run{
		Ops:           int64(pick(func(r Run) float64 { return float64(r.Ops) })),
		Seconds:       pick(func(r Run) float64 { return r.Seconds }),
		OpsPerSec:     pick(func(r Run) float64 { return r.OpsPerSec }),
		P50us:         pick(func(r Run) float64 { return r.P50us }),
		P99us:         pick(func(r Run) float64 { return r.P99us }),
		ServerCPUSec:  pick(func(r Run) float64 { return r.ServerCPUSec }),
		CPUPerOpUs:    pick(func(r Run) float64 { return r.CPUPerOpUs }),
		LoadgenCPUPct: pick(func(r Run) float64 { return r.LoadgenCPUPct }),
	}
}

// cell returns the cell of peer in scenario, if any.
func (r *Report) cell(scenario, peer string) *Cell {
	for i := range r.Cells {
		if r.Cells[i].Scenario == scenario && r.Cells[i].Peer == peer {
			return &r.Cells[i]
		}
	}
	return nil
}
