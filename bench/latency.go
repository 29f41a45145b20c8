package main

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"time"
)

// epoch is the origin of the send times stamped into paced messages; a
// duration since it is read from the monotonic clock.
var epoch = time.Now()

// stamp writes the current time into the first 8 bytes of body. The
// publisher reuses one body: both clients are done with it when Publish
// returns (ours copies a small body into its frames, amqp091-go writes it).
func stamp(body []byte) {
	binary.BigEndian.PutUint64(body, uint64(time.Since(epoch)))
}

// sinceStamp returns how long ago body was stamped.
func sinceStamp(body []byte) time.Duration {
	if len(body) < 8 {
		return 0
	}
	return time.Since(epoch) - time.Duration(binary.BigEndian.Uint64(body))
}

// latencies collects the latency of each message of a run. One goroutine
// adds; its room is allocated before the measured window.
type latencies struct {
	d []time.Duration
}

func newLatencies(n int) *latencies { return &latencies{d: make([]time.Duration, 0, n)} }

func (l *latencies) add(d time.Duration) { l.d = append(l.d, d) }

// percentile returns the p-th percentile (0 < p ≤ 100), nearest rank.
func (l *latencies) percentile(p float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// pace calls publish n times at rate per second, from the calling
// goroutine: message i is due at i/rate after the start. It sleeps while
// ahead of the schedule and catches up without sleeping while behind, so
// the mean rate is exact even though a sleep lasts at least about a
// millisecond here (the runtime's poller waits in whole milliseconds).
func pace(ctx context.Context, n int, rate float64, publish func(i int) error) error {
	interval := time.Duration(float64(time.Second) / rate)
	timer := time.NewTimer(time.Hour) // one timer for the run: no allocation per sleep
	defer timer.Stop()
	start := time.Now()
	for i := 0; i < n; i++ {
		if ahead := time.Duration(i)*interval - time.Since(start); ahead > 0 {
			timer.Reset(ahead)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		if err := publish(i); err != nil {
			return err
		}
	}
	return nil
}

var errCorrelation = errors.New("reply to another request")

// correlationIDs returns n distinct correlation ids, made before the
// measured window.
func correlationIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	return ids
}
