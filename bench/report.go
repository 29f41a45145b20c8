package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

const (
	oursName   = "ours"
	theirsName = "amqp091-go"
)

type report struct {
	Date      string       `json:"date"`
	NumCPU    int          `json:"num_cpu"`
	GOOS      string       `json:"goos"`
	GOARCH    string       `json:"goarch"`
	GoVersion string       `json:"go_version"`
	Broker    string       `json:"broker"`
	Theirs    string       `json:"theirs"`
	Ours      string       `json:"ours_revision"`
	LoadAvg   string       `json:"load_average_at_start"`
	Rounds    int          `json:"rounds"`
	Scale     float64      `json:"scale"`
	Recovery  bool         `json:"ours_recovery"` // amqproto's automatic recovery was on
	Rows      []*rowResult `json:"rows"`
}

type rowResult struct {
	Row      string                   `json:"row"`
	Scenario string                   `json:"scenario"`
	Desc     string                   `json:"description"`
	Messages int                      `json:"messages"`
	BodySize int                      `json:"body_size"`
	Idle     bool                     `json:"idle,omitempty"` // Messages counts idle connections
	Clients  map[string]*clientResult `json:"clients"`
	// Ratios of the medians, ours / amqp091-go.
	CPURatio        *float64 `json:"cpu_ratio,omitempty"`
	ThroughputRatio *float64 `json:"throughput_ratio,omitempty"`
	P50Ratio        *float64 `json:"p50_ratio,omitempty"`
	P99Ratio        *float64 `json:"p99_ratio,omitempty"`
	HeapRatio       *float64 `json:"heap_ratio,omitempty"`
	Targets         []target `json:"targets,omitempty"`
}

type clientResult struct {
	Runs     []sample `json:"runs"`
	RunStats []stats  `json:"run_stats"`
	Median   *stats   `json:"median,omitempty"`
	Errors   []string `json:"errors,omitempty"`
	Retried  []string `json:"retried,omitempty"` // runs that failed and were run again
}

type stats struct {
	MsgsPerSec      float64 `json:"msgs_per_sec"`
	MBPerSec        float64 `json:"mb_per_sec"` // 10^6 bytes of body per second
	CPUMicrosPerMsg float64 `json:"cpu_us_per_msg"`
	BytesPerMsg     float64 `json:"bytes_per_msg"`
	AllocsPerMsg    float64 `json:"allocs_per_msg"`
	SwitchesPerMsg  float64 `json:"context_switches_per_msg"`
	ElapsedSec      float64 `json:"elapsed_sec"`
	P50Micros       float64 `json:"p50_us,omitempty"`
	P99Micros       float64 `json:"p99_us,omitempty"`
	// The idle rows: per connection.
	HeapKiB    float64 `json:"heap_kib_per_conn,omitempty"`
	StackKiB   float64 `json:"stack_kib_per_conn,omitempty"`
	Goroutines float64 `json:"goroutines_per_conn,omitempty"`
}

type target struct {
	What string  `json:"what"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Met  bool    `json:"met"`
}

func statsOf(s sample) stats {
	return stats{MsgsPerSec: s.msgsPerSec(), MBPerSec: s.mbPerSec(), CPUMicrosPerMsg: s.cpuMicrosPerMsg(),
		BytesPerMsg: s.bytesPerMsg(), AllocsPerMsg: s.allocsPerMsg(), SwitchesPerMsg: s.switchesPerMsg(),
		ElapsedSec: s.Elapsed.Seconds(), P50Micros: micros(s.P50), P99Micros: micros(s.P99),
		HeapKiB: s.HeapPerConn / kib, StackKiB: s.StackPerConn / kib, Goroutines: s.GoroutinesPerConn}
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// medianOf returns the stats whose every figure is the median of that
// figure over runs.
func medianOf(runs []stats) *stats {
	var m stats
	for _, f := range []func(*stats) *float64{
		func(s *stats) *float64 { return &s.MsgsPerSec },
		func(s *stats) *float64 { return &s.MBPerSec },
		func(s *stats) *float64 { return &s.CPUMicrosPerMsg },
		func(s *stats) *float64 { return &s.BytesPerMsg },
		func(s *stats) *float64 { return &s.AllocsPerMsg },
		func(s *stats) *float64 { return &s.SwitchesPerMsg },
		func(s *stats) *float64 { return &s.ElapsedSec },
		func(s *stats) *float64 { return &s.P50Micros },
		func(s *stats) *float64 { return &s.P99Micros },
		func(s *stats) *float64 { return &s.HeapKiB },
		func(s *stats) *float64 { return &s.StackKiB },
		func(s *stats) *float64 { return &s.Goroutines },
	} {
		xs := make([]float64, len(runs))
		for i := range runs {
			xs[i] = *f(&runs[i])
		}
		*f(&m) = median(xs)
	}
	return &m
}

// ratio returns a/b, or nil when b is not positive.
func ratio(a, b float64) *float64 {
	if b <= 0 {
		return nil
	}
	r := a / b
	return &r
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// finish computes medians (each figure separately), ratios and targets.
func (r *report) finish() {
	for _, row := range r.Rows {
		for _, cr := range row.Clients {
			if len(cr.Runs) == 0 {
				continue
			}
			for _, s := range cr.Runs {
				cr.RunStats = append(cr.RunStats, statsOf(s))
			}
			cr.Median = medianOf(cr.RunStats)
		}
		o, t := row.Clients[oursName], row.Clients[theirsName]
		if o != nil && t != nil && o.Median != nil && t.Median != nil {
			row.CPURatio = ratio(o.Median.CPUMicrosPerMsg, t.Median.CPUMicrosPerMsg)
			row.ThroughputRatio = ratio(o.Median.MsgsPerSec, t.Median.MsgsPerSec)
			row.P50Ratio = ratio(o.Median.P50Micros, t.Median.P50Micros)
			row.P99Ratio = ratio(o.Median.P99Micros, t.Median.P99Micros)
			if row.Idle {
				row.HeapRatio = ratio(o.Median.HeapKiB, t.Median.HeapKiB)
			}
		}
		row.Targets = targetsFor(row)
	}
}

// targetsFor checks the goals set for our client.
func targetsFor(row *rowResult) []target {
	var ts []target
	o := row.Clients[oursName]
	if o == nil || o.Median == nil {
		return nil
	}
	atMost := func(what string, want float64, got *float64) {
		if got != nil {
			ts = append(ts, target{What: what, Want: fmt.Sprintf("≤ %.2f", want), Got: *got, Met: *got <= want})
		}
	}
	if row.Idle {
		atMost("heap per connection ours/theirs", 1, row.HeapRatio)
		return ts
	}
	cpuMax := map[string]float64{"a": 0.35, "b": 0.35, "d": 0.35, "f": 0.35, "e-con": 0.2, "e-pub": 0.6,
		"h": 0.8, "i": 0.7, "j": 0.75, "k": 0.3}
	if want, ok := cpuMax[row.Row]; ok {
		atMost("CPU ours/theirs", want, row.CPURatio)
	}
	p50Max := map[string]float64{"h": 0.9, "i": 0.8}
	if want, ok := p50Max[row.Row]; ok {
		atMost("p50 latency ours/theirs", want, row.P50Ratio)
	}
	if row.Row == "h" {
		atMost("p99 latency ours/theirs", 0.9, row.P99Ratio)
	}
	if strings.Contains("abdf", row.Row) && len(row.Row) == 1 && row.ThroughputRatio != nil {
		ts = append(ts, target{What: "msgs/s ours/theirs", Want: "≥ 1.10", Got: *row.ThroughputRatio, Met: *row.ThroughputRatio >= 1.1})
	}
	// Per message: a publish may allocate 2, a delivery 3; a paced message
	// is both, a round trip two of each.
	maxAllocs := map[string]float64{"d": 3, "e-con": 3, "j": 3, "h": 5, "i": 10}[row.Row]
	if maxAllocs == 0 {
		maxAllocs = 2
	}
	atMost("allocs/msg", maxAllocs, &o.Median.AllocsPerMsg)
	return ts
}

func (r *report) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "## amqproto vs %s\n\n", r.Theirs)
	recovery := "off (-recovery=false)"
	if r.Recovery {
		recovery = "on (its default; amqp091-go has none)"
	}
	fmt.Fprintf(w, "%s · %d CPUs, %s/%s, %s · broker %s · ours at %s, automatic recovery %s · medians of %d rounds, scale %g · load average at start %s\n\n",
		r.Date, r.NumCPU, r.GOOS, r.GOARCH, r.GoVersion, r.Broker, r.Ours, recovery, r.Rounds, r.Scale, r.LoadAvg)
	r.writeMessages(w)
	r.writeLatencies(w)
	r.writeIdle(w)
	fmt.Fprintln(w)
	seen := map[string]bool{}
	for _, row := range r.Rows {
		if seen[row.Scenario] {
			continue
		}
		seen[row.Scenario] = true
		if row.Idle {
			fmt.Fprintf(w, "- %s: %s.\n", row.Scenario, row.Desc)
			continue
		}
		fmt.Fprintf(w, "- %s: %s messages of %s; %s.\n", row.Scenario, thousands(float64(row.Messages)), size(row.BodySize), row.Desc)
	}
	fmt.Fprintln(w, "- CPU: process user+sys time (getrusage) over the measured window, divided by the messages; switches: the process's context switches (getrusage nvcsw+nivcsw) per message; B and allocs: runtime.MemStats TotalAlloc and Mallocs deltas; MB = 10^6 bytes of body.")
	if slices.ContainsFunc(r.Rows, func(row *rowResult) bool { return row.Idle }) {
		fmt.Fprintln(w, "- Idle: heap is runtime.MemStats HeapAlloc and stack StackInuse, after two garbage collections, before the dials and after the idle wait, divided by the connections; goroutines likewise from runtime.NumGoroutine.")
	}

	var missed, errs, retried []string
	for _, row := range r.Rows {
		for _, t := range row.Targets {
			if !t.Met {
				missed = append(missed, fmt.Sprintf("%s: %s = %.2f, target %s", row.Row, t.What, t.Got, t.Want))
			}
		}
		for _, name := range []string{oursName, theirsName} {
			if cr := row.Clients[name]; cr != nil {
				for _, e := range cr.Errors {
					errs = append(errs, fmt.Sprintf("%s %s %s", row.Row, name, e))
				}
				for _, e := range cr.Retried {
					retried = append(retried, fmt.Sprintf("%s %s %s", row.Scenario, name, e))
				}
			}
		}
	}
	if len(missed) > 0 {
		fmt.Fprintln(w, "\nTargets missed by ours:")
		for _, m := range missed {
			fmt.Fprintln(w, "- "+m)
		}
	}
	if len(retried) > 0 {
		fmt.Fprintln(w, "\nRuns discarded and run again:")
		for _, e := range retried {
			fmt.Fprintln(w, "- "+e)
		}
	}
	if len(errs) > 0 {
		fmt.Fprintln(w, "\nErrors (no figure for that round):")
		for _, e := range errs {
			fmt.Fprintln(w, "- "+e)
		}
	}
}

func size(n int) string {
	switch {
	case n%mib == 0:
		return fmt.Sprintf("%d MiB", n/mib)
	case n%kib == 0:
		return fmt.Sprintf("%d KiB", n/kib)
	}
	return fmt.Sprintf("%d B", n)
}

// thousands formats v rounded to an integer with comma separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// forEach calls f for each client's result of the rows that keep, ours
// first; ratios is true for ours, whose line carries the ratios.
func (r *report) forEach(keep func(*rowResult) bool, f func(row *rowResult, name string, cr *clientResult, ratios bool)) {
	for _, row := range r.Rows {
		if !keep(row) {
			continue
		}
		for _, name := range []string{oursName, theirsName} {
			if cr := row.Clients[name]; cr != nil {
				f(row, name, cr, name == oursName)
			}
		}
	}
}

// fmtRatio formats an optional ratio, or nothing.
func fmtRatio(x *float64, show bool) string {
	if x == nil || !show {
		return ""
	}
	return fmt.Sprintf("%.2f", *x)
}

func (r *report) writeMessages(w io.Writer) {
	if !slices.ContainsFunc(r.Rows, func(row *rowResult) bool { return !row.Idle }) {
		return
	}
	fmt.Fprintln(w, "| scenario | client | msgs/s | MB/s | CPU µs/msg | switches/msg | B/msg | allocs/msg | CPU ours/theirs | msgs/s ours/theirs |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	r.forEach(func(row *rowResult) bool { return !row.Idle }, func(row *rowResult, name string, cr *clientResult, ratios bool) {
		if cr.Median == nil {
			fmt.Fprintf(w, "| %s | %s | failed | | | | | | | |\n", row.Row, name)
			return
		}
		m := cr.Median
		fmt.Fprintf(w, "| %s | %s | %s | %.1f | %.2f | %.2f | %s | %.2f | %s | %s |\n", row.Row, name,
			thousands(m.MsgsPerSec), m.MBPerSec, m.CPUMicrosPerMsg, m.SwitchesPerMsg, thousands(m.BytesPerMsg), m.AllocsPerMsg,
			fmtRatio(row.CPURatio, ratios), fmtRatio(row.ThroughputRatio, ratios))
	})
}

func (r *report) writeLatencies(w io.Writer) {
	timed := func(row *rowResult) bool {
		for _, cr := range row.Clients {
			if cr.Median != nil && cr.Median.P50Micros > 0 {
				return true
			}
		}
		return false
	}
	if !slices.ContainsFunc(r.Rows, timed) {
		return
	}
	fmt.Fprintln(w, "\n| scenario | client | p50 µs | p99 µs | p50 ours/theirs | p99 ours/theirs |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: |")
	r.forEach(timed, func(row *rowResult, name string, cr *clientResult, ratios bool) {
		if cr.Median == nil {
			fmt.Fprintf(w, "| %s | %s | failed | | | |\n", row.Row, name)
			return
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %s | %s |\n", row.Row, name, cr.Median.P50Micros, cr.Median.P99Micros,
			fmtRatio(row.P50Ratio, ratios), fmtRatio(row.P99Ratio, ratios))
	})
}

func (r *report) writeIdle(w io.Writer) {
	idle := func(row *rowResult) bool { return row.Idle }
	if !slices.ContainsFunc(r.Rows, idle) {
		return
	}
	fmt.Fprintln(w, "\n| scenario | client | connections | heap KiB/conn | stack KiB/conn | goroutines/conn | dial ms | dial CPU µs | allocs/dial | heap ours/theirs |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	r.forEach(idle, func(row *rowResult, name string, cr *clientResult, ratios bool) {
		if cr.Median == nil {
			fmt.Fprintf(w, "| %s | %s | failed | | | | | | | |\n", row.Row, name)
			return
		}
		m := cr.Median
		fmt.Fprintf(w, "| %s | %s | %s | %.1f | %.1f | %.2f | %.2f | %.0f | %.0f | %s |\n", row.Row, name,
			thousands(float64(row.Messages)), m.HeapKiB, m.StackKiB, m.Goroutines, 1e3/m.MsgsPerSec, m.CPUMicrosPerMsg,
			m.AllocsPerMsg, fmtRatio(row.HeapRatio, ratios))
	})
}
