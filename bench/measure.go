package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"
)

// sample is what one measured window cost.
type sample struct {
	N        int           `json:"messages"`
	BodySize int           `json:"body_size"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	CPU      time.Duration `json:"cpu_ns"` // user+sys of the whole process
	Bytes    uint64        `json:"alloc_bytes"`
	Mallocs  uint64        `json:"allocs"`
	// Switches counts the process's context switches, voluntary and not:
	// each is a thread going to sleep or being preempted, and on a virtual
	// machine a wake-up across CPUs is among the dearest things a client
	// does.
	Switches int64 `json:"context_switches"`

	// The 50th and 99th percentile latencies of the rows that record them.
	P50 time.Duration `json:"p50_ns,omitempty"`
	P99 time.Duration `json:"p99_ns,omitempty"`

	// What each idle connection holds (the idle rows, where N counts
	// connections): Go heap and goroutine stacks in bytes, and goroutines.
	HeapPerConn       float64 `json:"heap_bytes_per_conn,omitempty"`
	StackPerConn      float64 `json:"stack_bytes_per_conn,omitempty"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
}

func (s sample) msgsPerSec() float64 { return float64(s.N) / s.Elapsed.Seconds() }
func (s sample) mbPerSec() float64 {
	return float64(s.N) * float64(s.BodySize) / 1e6 / s.Elapsed.Seconds()
}
func (s sample) cpuMicrosPerMsg() float64 { return float64(s.CPU.Nanoseconds()) / 1e3 / float64(s.N) }
func (s sample) bytesPerMsg() float64     { return float64(s.Bytes) / float64(s.N) }
func (s sample) allocsPerMsg() float64    { return float64(s.Mallocs) / float64(s.N) }
func (s sample) switchesPerMsg() float64  { return float64(s.Switches) / float64(s.N) }

// usage returns the process's CPU time (user+sys) and context switches.
func usage() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw + ru.Nivcsw
}

// profiling says where to write the profiles of one measured window; empty
// paths write nothing.
type profiling struct {
	cpu, mem, trace string
}

// measure runs p.Run in the measured window: wall time, process CPU time,
// bytes and objects allocated. A garbage collection runs before the window
// so that every run starts from the same heap state; the collector's work
// during the window is part of the cost.
func measure(ctx context.Context, p prepared, n, bodySize int, prof profiling) (sample, error) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	if prof.mem != "" {
		if err := writeAllocs(prof.mem + ".base"); err != nil {
			return sample{}, err
		}
	}
	for _, rec := range []struct {
		path  string
		start func(io.Writer) error
	}{{prof.cpu, pprof.StartCPUProfile}, {prof.trace, trace.Start}} {
		if rec.path == "" {
			continue
		}
		f, err := os.Create(rec.path)
		if err != nil {
			return sample{}, err
		}
		defer f.Close()
		if err := rec.start(f); err != nil {
			return sample{}, err
		}
	}
	runtime.ReadMemStats(&m0)
	c0, sw0 := usage()
	t0 := time.Now()

	err := p.Run(ctx)

	elapsed := time.Since(t0)
	c1, sw1 := usage()
	runtime.ReadMemStats(&m1)
	if prof.cpu != "" {
		pprof.StopCPUProfile()
	}
	if prof.trace != "" {
		trace.Stop()
	}
	if prof.mem != "" {
		runtime.GC()
		if werr := writeAllocs(prof.mem); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return sample{}, err
	}
	return sample{N: n, BodySize: bodySize, Elapsed: elapsed, CPU: c1 - c0,
		Bytes: m1.TotalAlloc - m0.TotalAlloc, Mallocs: m1.Mallocs - m0.Mallocs, Switches: sw1 - sw0}, nil
}

// writeAllocs writes the allocation profile (everything allocated since the
// program started, as of the last garbage collection). Compare two with
// `go tool pprof -sample_index=alloc_objects -base FILE.base FILE`.
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
