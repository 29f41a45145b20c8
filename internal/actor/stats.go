package actor

import (
	"sync/atomic"
	"time"
)

// Stats are the counters of one connection, from its dial to its end.
type Stats struct {
	BytesIn, BytesOut   uint64
	FramesIn, FramesOut uint64
	Reads, Writes       uint64
	Published           uint64
	Acked, Nacked       uint64
	Returned            uint64
	Delivered           uint64
	Blocked             uint64        // connection.blocked received while unblocked
	BlockedFor          time.Duration // the current blocked period included
	HeartbeatTimeouts   uint64
}

// Add returns the sum of s and o.
func (s Stats) Add(o Stats) Stats {
	return Stats{
		BytesIn: s.BytesIn + o.BytesIn, BytesOut: s.BytesOut + o.BytesOut,
		FramesIn: s.FramesIn + o.FramesIn, FramesOut: s.FramesOut + o.FramesOut,
		Reads: s.Reads + o.Reads, Writes: s.Writes + o.Writes,
		Published: s.Published + o.Published, Acked: s.Acked + o.Acked, Nacked: s.Nacked + o.Nacked,
		Returned: s.Returned + o.Returned, Delivered: s.Delivered + o.Delivered,
		Blocked: s.Blocked + o.Blocked, BlockedFor: s.BlockedFor + o.BlockedFor,
		HeartbeatTimeouts: s.HeartbeatTimeouts + o.HeartbeatTimeouts,
	}
}

// counters are written by the loop only (the reader and writer goroutines
// report to it) and read by any goroutine: atomics, so that reading them
// takes no lock and costs the loop no more than an add per event.
type counters struct {
	bytesIn, bytesOut   atomic.Uint64
	framesIn, framesOut atomic.Uint64
	reads, writes       atomic.Uint64
	published           atomic.Uint64
	acked, nacked       atomic.Uint64
	returned            atomic.Uint64
	delivered           atomic.Uint64
	blocked             atomic.Uint64
	blockedNanos        atomic.Int64 // of the blocked periods that ended
	blockedSince        atomic.Int64 // UnixNano; 0 while not blocked
	heartbeatTimeouts   atomic.Uint64
}

// Stats returns the connection's counters so far. Safe for concurrent
// use; each counter is read atomically, not all of them at one instant.
func (c *Conn) Stats() Stats {
	k := &c.stats
	blockedFor := time.Duration(k.blockedNanos.Load())
	if since := k.blockedSince.Load(); since != 0 {
		blockedFor += time.Duration(time.Now().UnixNano() - since)
	}
	return Stats{
		BytesIn: k.bytesIn.Load(), BytesOut: k.bytesOut.Load(),
		FramesIn: k.framesIn.Load(), FramesOut: k.framesOut.Load(),
		Reads: k.reads.Load(), Writes: k.writes.Load(),
		Published: k.published.Load(), Acked: k.acked.Load(), Nacked: k.nacked.Load(),
		Returned: k.returned.Load(), Delivered: k.delivered.Load(),
		Blocked: k.blocked.Load(), BlockedFor: blockedFor,
		HeartbeatTimeouts: k.heartbeatTimeouts.Load(),
	}
}

// publishFrameCounts copies the core's frame counts for readers; the loop
// calls it after each step.
func (l *loop) publishFrameCounts() {
	in, out := l.core.FrameCounts()
	k := &l.c.stats
	if k.framesIn.Load() != in {
		k.framesIn.Store(in)
	}
	if k.framesOut.Load() != out {
		k.framesOut.Store(out)
	}
}

// blockedChanged counts a blocked period and its length.
func (l *loop) blockedChanged(blocked bool, at time.Time) {
	k := &l.c.stats
	since := k.blockedSince.Load()
	switch {
	case blocked && since == 0:
		k.blocked.Add(1)
		k.blockedSince.Store(at.UnixNano())
	case !blocked && since != 0:
		k.blockedNanos.Add(at.UnixNano() - since)
		k.blockedSince.Store(0)
	}
}

// ChannelStats are one channel's counters.
type ChannelStats struct {
	AwaitingConfirm int // publishes numbered in confirm mode and not yet settled
}

// Stats returns the channel's counters.
func (ch *Channel) Stats() ChannelStats {
	return ChannelStats{AwaitingConfirm: int(ch.unconfirmed.Load())}
}

// Received returns the deliveries the loop handed to the consumer.
func (cons *Consumer) Received() uint64 { return cons.received.Load() }
