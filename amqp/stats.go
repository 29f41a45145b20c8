package amqp

import (
	"time"

	"github.com/amqproto/amqproto/internal/actor"
)

// Stats are a connection's counters, as Conn.Stats returns them. The
// counters (every field but Channels, Consumers and the gauges marked so)
// only grow, and cover every socket the connection has had: a recovery
// does not reset them. The model is database/sql's DBStats: a plain value,
// cheap to take every second and to export as metrics.
type Stats struct {
	// Channels is the number of channels open now (a gauge).
	Channels int
	// AwaitingConfirm is the number of publishes on channels in confirm
	// mode that the broker has not settled yet, over every channel (a
	// gauge; ChannelStats has it per channel).
	AwaitingConfirm int

	// Published counts the messages handed to the socket. A publish that
	// Publish handed over (it returned nil) but the connection never wrote,
	// because the socket was lost first, is not counted: its Confirmation
	// says ErrOutcomeUnknown.
	Published uint64
	// Acked and Nacked count the broker's confirms, one per message
	// (a multiple ack counts every message it covers).
	Acked, Nacked uint64
	// Returned counts the messages the broker returned (basic.return).
	Returned uint64
	// Delivered counts the deliveries received for consumers.
	Delivered uint64

	// BytesIn and BytesOut count the bytes read from and written to the
	// sockets; FramesIn and FramesOut the AMQP frames (heartbeats
	// included) received and queued to send.
	BytesIn, BytesOut   uint64 // bytes read and written
	FramesIn, FramesOut uint64 // frames received and queued to send
	// Reads and Writes count the reads and writes on the sockets. Frames
	// queued together go out in one write, so Writes grows far slower than
	// FramesOut under load.
	Reads, Writes uint64

	// Blocked counts the times the broker blocked the connection
	// (connection.blocked), BlockedFor the time spent blocked, the
	// current period included.
	Blocked    uint64        // periods blocked
	BlockedFor time.Duration // time spent blocked
	// HeartbeatsMissed counts the sockets lost because the broker sent
	// nothing for two heartbeat intervals.
	HeartbeatsMissed uint64
	// Recoveries counts the sockets that replaced a lost one: Generation-1.
	Recoveries uint64

	// ChannelStats has one entry per open channel, in no set order.
	ChannelStats []ChannelStats
}

// ChannelStats are one open channel's figures.
type ChannelStats struct {
	// ID is the channel's number on the current socket.
	ID uint16
	// AwaitingConfirm is the number of its publishes not settled yet.
	AwaitingConfirm int
	// Consumers has one entry per consumer on the channel.
	Consumers []ConsumerStats
}

// ConsumerStats are one consumer's figures.
type ConsumerStats struct {
	Tag   string // the consumer tag
	Queue string // the queue it consumes from
	// Received counts the deliveries received for it, over every socket.
	Received uint64
	// Buffered is the number of deliveries received and not yet taken
	// from Deliveries (a gauge).
	Buffered int
}

// Stats returns the connection's counters. It takes no lock that the
// connection's own goroutines hold while they move messages, so it is
// cheap enough to call every second; each counter is read atomically, but
// not all at one instant. Safe for concurrent use.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	total := c.pastStats.Add(c.a.Stats())
	gen := c.gen
	channels := make([]*Channel, 0, len(c.channels))
	for ch := range c.channels {
		channels = append(channels, ch)
	}
	c.mu.Unlock()
	s := Stats{
		Channels:  len(channels),
		Published: total.Published, Acked: total.Acked, Nacked: total.Nacked, Returned: total.Returned,
		Delivered: total.Delivered,
		BytesIn:   total.BytesIn, BytesOut: total.BytesOut, FramesIn: total.FramesIn, FramesOut: total.FramesOut,
		Reads: total.Reads, Writes: total.Writes,
		Blocked: total.Blocked, BlockedFor: total.BlockedFor, HeartbeatsMissed: total.HeartbeatTimeouts,
		Recoveries:   gen - 1,
		ChannelStats: make([]ChannelStats, 0, len(channels)),
	}
	for _, ch := range channels {
		cs := ch.stats()
		s.AwaitingConfirm += cs.AwaitingConfirm
		s.ChannelStats = append(s.ChannelStats, cs)
	}
	return s
}

// retire adds the counters of a, a socket that has ended, to those kept
// across generations; c.mu is held.
func (c *Conn) retire(a *actor.Conn) {
	c.pastStats = c.pastStats.Add(a.Stats())
}

func (ch *Channel) stats() ChannelStats {
	ch.mu.Lock()
	g := ch.gen
	consumers := make([]*Consumer, len(ch.consumers))
	copy(consumers, ch.consumers)
	queues := ch.consumerQueues()
	ch.mu.Unlock()
	cs := ChannelStats{ID: g.a.ID(), AwaitingConfirm: g.a.Stats().AwaitingConfirm,
		Consumers: make([]ConsumerStats, len(consumers))}
	for i, c := range consumers {
		cs.Consumers[i] = c.stats(queues[i])
	}
	return cs
}

func (c *Consumer) stats(queue string) ConsumerStats {
	c.mu.Lock()
	a, past := c.a, c.pastReceived
	c.mu.Unlock()
	return ConsumerStats{Tag: c.tag, Queue: queue, Received: past + a.Received(),
		Buffered: a.Deliveries.Len() + len(c.deliveries)}
}
