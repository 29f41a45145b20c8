package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
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
	Rows      []*rowResult `json:"rows"`
}

type rowResult struct {
	Row      string                   `json:"row"`
	Scenario string                   `json:"scenario"`
	Desc     string                   `json:"description"`
	Messages int                      `json:"messages"`
	BodySize int                      `json:"body_size"`
	Clients  map[string]*clientResult `json:"clients"`
	// Ratios of the medians, ours / amqp091-go.
	CPURatio        *float64 `json:"cpu_ratio,omitempty"`
	ThroughputRatio *float64 `json:"throughput_ratio,omitempty"`
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
		ElapsedSec: s.Elapsed.Seconds()}
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
			var cols [7][]float64
			for _, s := range cr.Runs {
				st := statsOf(s)
				cr.RunStats = append(cr.RunStats, st)
				for i, v := range []float64{st.MsgsPerSec, st.MBPerSec, st.CPUMicrosPerMsg, st.BytesPerMsg, st.AllocsPerMsg, st.ElapsedSec, st.SwitchesPerMsg} {
					cols[i] = append(cols[i], v)
				}
			}
			cr.Median = &stats{MsgsPerSec: median(cols[0]), MBPerSec: median(cols[1]), CPUMicrosPerMsg: median(cols[2]),
				BytesPerMsg: median(cols[3]), AllocsPerMsg: median(cols[4]), ElapsedSec: median(cols[5]),
				SwitchesPerMsg: median(cols[6])}
		}
		o, t := row.Clients[oursName], row.Clients[theirsName]
		if o != nil && t != nil && o.Median != nil && t.Median != nil {
			cpu := o.Median.CPUMicrosPerMsg / t.Median.CPUMicrosPerMsg
			thr := o.Median.MsgsPerSec / t.Median.MsgsPerSec
			row.CPURatio, row.ThroughputRatio = &cpu, &thr
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
	cpuMax := map[string]float64{"a": 0.35, "b": 0.35, "d": 0.35, "f": 0.35, "e-con": 0.2, "e-pub": 0.6}
	if want, ok := cpuMax[row.Row]; ok && row.CPURatio != nil {
		ts = append(ts, target{What: "CPU ours/theirs", Want: fmt.Sprintf("≤ %.2f", want), Got: *row.CPURatio, Met: *row.CPURatio <= want})
	}
	if strings.Contains("abdf", row.Row) && len(row.Row) == 1 && row.ThroughputRatio != nil {
		ts = append(ts, target{What: "msgs/s ours/theirs", Want: "≥ 1.10", Got: *row.ThroughputRatio, Met: *row.ThroughputRatio >= 1.1})
	}
	maxAllocs := 2.0 // per published message
	if row.Row == "d" || row.Row == "e-con" {
		maxAllocs = 3 // per delivered message
	}
	ts = append(ts, target{What: "allocs/msg", Want: fmt.Sprintf("≤ %.0f", maxAllocs), Got: o.Median.AllocsPerMsg, Met: o.Median.AllocsPerMsg <= maxAllocs})
	return ts
}

func (r *report) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "## amqproto vs %s\n\n", r.Theirs)
	fmt.Fprintf(w, "%s · %d CPUs, %s/%s, %s · broker %s · ours at %s · medians of %d rounds, scale %g · load average at start %s\n\n",
		r.Date, r.NumCPU, r.GOOS, r.GOARCH, r.GoVersion, r.Broker, r.Ours, r.Rounds, r.Scale, r.LoadAvg)
	fmt.Fprintln(w, "| scenario | client | msgs/s | MB/s | CPU µs/msg | switches/msg | B/msg | allocs/msg | CPU ours/theirs | msgs/s ours/theirs |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, row := range r.Rows {
		for _, name := range []string{oursName, theirsName} {
			cr := row.Clients[name]
			if cr == nil {
				continue
			}
			cpuR, thrR := "", ""
			if name == oursName && row.CPURatio != nil {
				cpuR, thrR = fmt.Sprintf("%.2f", *row.CPURatio), fmt.Sprintf("%.2f", *row.ThroughputRatio)
			}
			if cr.Median == nil {
				fmt.Fprintf(w, "| %s | %s | failed | | | | | | | |\n", row.Row, name)
				continue
			}
			m := cr.Median
			fmt.Fprintf(w, "| %s | %s | %s | %.1f | %.2f | %.2f | %s | %.2f | %s | %s |\n", row.Row, name,
				thousands(m.MsgsPerSec), m.MBPerSec, m.CPUMicrosPerMsg, m.SwitchesPerMsg, thousands(m.BytesPerMsg), m.AllocsPerMsg, cpuR, thrR)
		}
	}
	fmt.Fprintln(w)
	seen := map[string]bool{}
	for _, row := range r.Rows {
		if seen[row.Scenario] {
			continue
		}
		seen[row.Scenario] = true
		fmt.Fprintf(w, "- %s: %s messages of %s; %s.\n", row.Scenario, thousands(float64(row.Messages)), size(row.BodySize), row.Desc)
	}
	fmt.Fprintln(w, "- CPU: process user+sys time (getrusage) over the measured window, divided by the messages; switches: the process's context switches (getrusage nvcsw+nivcsw) per message; B and allocs: runtime.MemStats TotalAlloc and Mallocs deltas; MB = 10^6 bytes of body.")

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
