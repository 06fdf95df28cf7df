package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Latency is a histogram summary in milliseconds (the JSON form).
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	Min   float64 `json:"min"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Summarize reduces h to its percentiles.
func Summarize(h *Histogram) Latency {
	return Latency{
		Count: h.Count(),
		Mean:  ms(h.Mean()),
		Min:   ms(h.Min()),
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}

// Result is one workload's outcome. Its JSON form is what -format=json
// prints and what bench/compare.sh reads (for both systems).
type Result struct {
	Workload    string   `json:"workload"`
	System      string   `json:"system"` // "cairn" or "etcd"
	Targets     []string `json:"targets"`
	Clients     int      `json:"clients"`
	Conns       int      `json:"conns,omitempty"`
	ValueSize   int      `json:"value_size,omitempty"`
	Keys        int      `json:"keys,omitempty"`
	Consistency string   `json:"consistency,omitempty"`
	// ElapsedSec is the measured wall time (setup excluded).
	ElapsedSec float64 `json:"elapsed_s"`
	Ops        uint64  `json:"ops"`
	Errors     uint64  `json:"errors"`
	// OpsPerSec is successful operations per second.
	OpsPerSec float64 `json:"ops_per_sec"`
	// Latency covers successful operations only (for watch-fanout: the
	// time from the write's acknowledgement until each watcher returned;
	// for failover: each round's window).
	Latency Latency `json:"latency_ms"`
	// Breakdown splits Latency by operation kind (kv-mix: get and put).
	Breakdown map[string]Latency `json:"breakdown_ms,omitempty"`
	// Extra holds workload-specific figures (e.g. agent CPU between writes).
	Extra map[string]float64 `json:"extra,omitempty"`
	// FirstError is the first error seen, to tell what the errors were.
	FirstError string `json:"first_error,omitempty"`
}

// WriteJSON writes results as one indented JSON array.
func WriteJSON(w io.Writer, results []*Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(results); err != nil {
		return fmt.Errorf("bench: encoding results: %w", err)
	}
	return nil
}

// WriteTable writes results as an aligned table for people: one row per
// workload (and one per operation kind under it), latencies in ms, then
// each result's extra figures and first error.
func WriteTable(w io.Writer, results []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tsystem\tclients\tops\terrors\tops/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	row := func(name, system, clients string, ops uint64, errs string, rate float64, l Latency) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, system, clients, ops, errs,
			fmtFloat(rate), fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.P999), fmtMS(l.Max))
	}
	for _, r := range results {
		name := r.Workload
		if r.Consistency != "" {
			name += " (" + r.Consistency + ")"
		}
		row(name, r.System, strconv.Itoa(r.Clients), r.Ops, strconv.FormatUint(r.Errors, 10), r.OpsPerSec, r.Latency)
		kinds := make([]string, 0, len(r.Breakdown))
		for k := range r.Breakdown {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			l := r.Breakdown[k]
			row("  "+k, "", "", l.Count, "", float64(l.Count)/max(r.ElapsedSec, 1e-9), l)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench: writing table: %w", err)
	}
	for _, r := range results {
		var notes []string
		keys := make([]string, 0, len(r.Extra))
		for k := range r.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			notes = append(notes, fmt.Sprintf("%s=%s", k, fmtFloat(r.Extra[k])))
		}
		if r.FirstError != "" {
			notes = append(notes, "first_error="+r.FirstError)
		}
		if len(notes) > 0 {
			if _, err := fmt.Fprintf(w, "%s: %s\n", r.Workload, strings.Join(notes, " ")); err != nil {
				return fmt.Errorf("bench: writing table: %w", err)
			}
		}
	}
	return nil
}

func fmtMS(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func fmtFloat(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
