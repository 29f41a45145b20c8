package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
)

// runIdle measures the idle rows of sc for cl: for each row, it dials that
// many connections with one channel each, one after another (the measured
// window: the cost of a dial), leaves them idle for o.idleFor, and reads
// what they hold after a garbage collection. Then it closes them.
func runIdle(o *options, cl client, sc scenario, round int) (map[string]sample, error) {
	out := map[string]sample{}
	for _, row := range sc.rows() {
		s, err := idleRow(o, cl, sc.countFor(row, o.scale))
		if err != nil {
			return out, fmt.Errorf("%s: %w", row, err)
		}
		out[row] = s
	}
	return out, nil
}

func idleRow(o *options, cl client, n int) (sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	closers := make([]func(context.Context) error, 0, n)
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		for _, c := range closers {
			_ = c(cctx)
		}
	}()
	before := heldNow()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c0, sw0 := usage()
	t0 := time.Now()
	for i := range n {
		c, err := cl.DialIdle(ctx, o.url)
		if err != nil {
			// Above a few hundred connections, check the broker's file
			// descriptor limit: rabbitmqctl status, "Sockets".
			return sample{}, fmt.Errorf("connection %d of %d: %w", i+1, n, err)
		}
		closers = append(closers, c)
	}
	elapsed := time.Since(t0)
	c1, sw1 := usage()
	runtime.ReadMemStats(&m1)

	// Let what a dial leaves behind finish (the last replies, goroutines
	// that end), so that only what an idle connection keeps is counted.
	select {
	case <-time.After(o.idleFor):
	case <-ctx.Done():
		return sample{}, context.Cause(ctx)
	}
	after := heldNow()
	if after.goroutines < before.goroutines {
		return sample{}, errors.New("goroutines ended that the connections did not start")
	}
	perConn := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return sample{N: n, Elapsed: elapsed, CPU: c1 - c0,
		Bytes: m1.TotalAlloc - m0.TotalAlloc, Mallocs: m1.Mallocs - m0.Mallocs, Switches: sw1 - sw0,
		HeapPerConn:       perConn(after.heap, before.heap),
		StackPerConn:      perConn(after.stack, before.stack),
		GoroutinesPerConn: perConn(uint64(after.goroutines), uint64(before.goroutines)),
	}, nil
}

// held is what the process holds: live heap, goroutine stacks, goroutines.
type held struct {
	heap, stack uint64
	goroutines  int
}

// heldNow reads what the process holds after a full garbage collection (two,
// so that objects freed by finalizers are gone too).
func heldNow() held {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return held{heap: m.HeapAlloc, stack: m.StackInuse, goroutines: runtime.NumGoroutine()}
}
