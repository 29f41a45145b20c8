package tests

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
)

// Conn.Stats counts what the test does: N publishes confirmed, N
// deliveries received, K of them still buffered.
func TestStatsCountPublishesConfirmsAndBufferedDeliveries(t *testing.T) {
	const n, taken = 20, 5
	c := dialURL(t, brokerURL(t), amqp.Config{})
	ch := confirmChannel(t, c)
	q := exclusiveQueue(t, ch)
	before := c.Stats()
	require.Equal(t, 1, before.Channels)
	require.Zero(t, before.Published)

	confs := make([]*amqp.Confirmation, n)
	for i := range confs {
		var err error
		confs[i], err = ch.Publish(ctxT(t), amqp.Publishing{RoutingKey: q, Body: []byte("stats")})
		require.NoError(t, err)
	}
	for _, conf := range confs {
		require.NoError(t, conf.Wait(ctxT(t)))
	}
	s := c.Stats()
	require.Equal(t, uint64(n), s.Published)
	require.Equal(t, uint64(n), s.Acked)
	require.Zero(t, s.Nacked)
	require.Zero(t, s.AwaitingConfirm)
	require.Len(t, s.ChannelStats, 1)
	require.Zero(t, s.ChannelStats[0].AwaitingConfirm)

	cons, err := ch.Consume(ctxT(t), q, amqp.ConsumeOptions{})
	require.NoError(t, err)
	for range taken {
		d := waitFor(t, cons.Deliveries(), testTimeout, "a delivery")
		require.NoError(t, d.Ack(ctxT(t), false))
	}
	// The rest arrive on their own; wait for the counter rather than a
	// fixed time.
	require.Eventually(t, func() bool { return c.Stats().Delivered == n }, testTimeout, 5*time.Millisecond)
	s = c.Stats()
	require.Len(t, s.ChannelStats, 1)
	require.Len(t, s.ChannelStats[0].Consumers, 1)
	cs := s.ChannelStats[0].Consumers[0]
	require.Equal(t, cons.Tag(), cs.Tag)
	require.Equal(t, q, cs.Queue)
	require.Equal(t, uint64(n), cs.Received)
	require.Equal(t, n-taken, cs.Buffered)

	require.Greater(t, s.BytesOut, before.BytesOut)
	require.Greater(t, s.BytesIn, before.BytesIn)
	require.GreaterOrEqual(t, s.FramesOut-before.FramesOut, uint64(3*n), "method, header and body per publish")
	require.GreaterOrEqual(t, s.FramesIn-before.FramesIn, uint64(3*n), "method, header and body per delivery")
	require.Positive(t, s.Writes)
	require.Positive(t, s.Reads)
	require.Zero(t, s.Recoveries)
}

// The counters of a Conn sum its sockets: a recovery does not reset them.
// A socket lost to silence counts a missed heartbeat, logged at Warn; the
// recovery is logged at Info.
func TestStatsSurviveARecoveryAndCountMissedHeartbeats(t *testing.T) {
	p, u := proxied(t)
	logs := &recordingHandler{}
	c := dialURL(t, u, amqp.Config{Heartbeat: time.Second, ConnectionTimeout: 5 * time.Second,
		Logger: slog.New(logs), Recovery: amqp.Recovery{InitialDelay: 10 * time.Millisecond}})
	events := c.RecoveryEvents()
	ch := confirmChannel(t, c)
	q := uniqueName(t, "q")
	_, err := ch.QueueDeclare(ctxT(t), q, amqp.QueueOptions{AutoDelete: false})
	require.NoError(t, err)
	cleanupQueue(t, c, q)
	for range 10 {
		publishConfirmed(t, ch, "", q, []byte("before"))
	}
	before := c.Stats()
	require.Equal(t, uint64(10), before.Acked)

	p.Blackhole(true)
	waitEventKind(t, events, amqp.Recovering)
	p.Blackhole(false)
	waitEventKind(t, events, amqp.Recovered)
	for range 10 {
		publishConfirmed(t, ch, "", q, []byte("after"))
	}
	s := c.Stats()
	require.Equal(t, uint64(20), s.Published)
	require.Equal(t, uint64(20), s.Acked)
	require.Equal(t, uint64(1), s.Recoveries)
	require.Equal(t, uint64(1), s.HeartbeatsMissed)
	require.Greater(t, s.BytesOut, before.BytesOut)
	require.Greater(t, s.FramesOut, before.FramesOut)

	require.True(t, logs.has(slog.LevelWarn, "amqp: missed heartbeats: the broker went silent"))
	require.True(t, logs.has(slog.LevelWarn, "amqp: connection lost; recovering"))
	require.True(t, logs.has(slog.LevelInfo, "amqp: connection recovered"))
	logs.requireNoPassword(t, "guest")
}

func waitEventKind(t *testing.T, events <-chan amqp.RecoveryEvent, kind amqp.RecoveryEventKind) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Kind == kind {
				return
			}
		case <-deadline:
			t.Fatalf("no %v event", kind)
		}
	}
}

// recordingHandler is a slog.Handler that keeps every record.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) has(level slog.Level, msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.Level == level && r.Message == msg {
			return true
		}
	}
	return false
}

// requireNoPassword checks that no record mentions secret, in its message
// or any attribute.
func (h *recordingHandler) requireNoPassword(t *testing.T, secret string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.String())
			return true
		})
		require.NotContains(t, b.String(), ":"+secret+"@", "a log record shows the password: %s", b.String())
	}
}
