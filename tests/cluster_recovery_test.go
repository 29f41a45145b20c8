package tests

import (
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/amqproto/amqproto/internal/clustertest"
	"github.com/stretchr/testify/require"
)

// clusterWorld is a confirmed publisher and a worker on one quorum queue,
// through one connection that knows every node of the cluster.
type clusterWorld struct {
	t      *testing.T
	cl     *clustertest.Cluster
	c      *amqp.Conn
	events <-chan amqp.RecoveryEvent
	queue  string
	pub    *publisher
	work   *recoveryWorker
}

func newClusterWorld(t *testing.T) *clusterWorld {
	cl := clustertest.New(t)
	c := dialURL(t, "", amqp.Config{ConnectionName: t.Name(), Addresses: cl.URLs(), Heartbeat: 2 * time.Second})
	w := &clusterWorld{t: t, cl: cl, c: c, events: c.RecoveryEvents(), queue: uniqueName(t, "quorum")}
	ch := confirmChannel(t, c)
	_, err := ch.QueueDeclare(ctxT(t), w.queue, amqp.QueueOptions{Durable: true, Args: amqp.Table{"x-queue-type": "quorum"}})
	require.NoError(t, err)
	t.Cleanup(func() { deleteQueueOnAnyNode(t, cl, w.queue) })
	cl.WaitQuorumOnline(t, w.queue) // see BROKER.md: never kill a member just declared

	work, err := c.Channel(ctxT(t))
	require.NoError(t, err)
	require.NoError(t, work.Qos(ctxT(t), 100, false))
	w.work = startRecoveryWorker(t, work, w.queue)
	// A steady 1,000 messages a second, which the worker keeps up with.
	w.pub = startPublisher(t, ch, time.Millisecond, func(int) (string, string) { return "", w.queue })
	return w
}

// nodeInUse returns the number of the node the connection is on.
func (w *clusterWorld) nodeInUse() int {
	addr := w.c.URI().Addr()
	for n := 1; n <= w.cl.Size(); n++ {
		u, err := url.Parse(w.cl.URL(n))
		require.NoError(w.t, err)
		if u.Host == addr {
			return n
		}
	}
	w.t.Fatalf("the connection is on %s, not a node of the cluster", addr)
	return 0
}

// killNodeInUse kills -9 the node the connection is on and waits for the
// connection to recover onto another; it returns the killed node.
func (w *clusterWorld) killNodeInUse() int {
	t := w.t
	acked := w.pub.acked()
	w.pub.waitAcked(t, acked+100)
	node := w.nodeInUse()
	start := time.Now()
	w.cl.KillNode(t, node)
	rw := &recoveryWorld{t: t, events: w.events}
	rw.waitEvent(amqp.Recovering, 30*time.Second)
	rec := rw.waitEvent(amqp.Recovered, 90*time.Second)
	require.NotEqual(t, node, w.nodeInUse(), "recovered onto another node")
	// Publishing resumes on the new node.
	acked = w.pub.acked()
	w.pub.waitAcked(t, acked+100)
	t.Logf("killed node %d; recovered onto %s (generation %d) and publishing again %v after the kill",
		node, rec.Addr, rec.Generation, time.Since(start).Round(time.Millisecond))
	return node
}

// finish stops publishing and checks that every acked message was
// consumed.
func (w *clusterWorld) finish() {
	t := w.t
	w.pub.stop(t)
	acked := w.pub.ackedWith(func(outcome) bool { return true })
	w.work.waitFor(t, acked)
	w.work.mu.Lock()
	dups := 0
	for _, n := range w.work.got {
		if n > 1 {
			dups++
		}
	}
	received := w.work.received
	w.work.mu.Unlock()
	require.NoError(t, w.c.Err())
	require.NoError(t, w.work.cons.Err())
	t.Logf("%d acked, all consumed; %d outcome unknown; %d deliveries, %d messages delivered more than once; longest Publish call %v",
		len(acked), w.pub.count(amqp.ErrOutcomeUnknown), received, dups, w.pub.longest)
}

// Losing the node the connection is on: the connection recovers onto
// another node, and no message whose confirm was acked is lost.
func TestClusterFailover(t *testing.T) {
	w := newClusterWorld(t)
	killed := w.killNodeInUse()
	w.finish()
	w.cl.StartNode(t, killed)
}

// Nodes killed and restarted in turn under a steady confirmed publisher:
// every acked message is consumed. AMQP_SOAK (a duration) makes it run
// longer than its default 30 s (at least one round).
func TestClusterSoak(t *testing.T) {
	d := 30 * time.Second
	if s := os.Getenv("AMQP_SOAK"); s != "" {
		var err error
		d, err = time.ParseDuration(s)
		require.NoError(t, err, "AMQP_SOAK")
	}
	w := newClusterWorld(t)
	deadline := time.Now().Add(d)
	for rounds := 1; time.Now().Before(deadline) || rounds == 1; rounds++ {
		killed := w.killNodeInUse()
		w.cl.StartNode(t, killed)
		w.cl.WaitQuorumOnline(t, w.queue)
		t.Logf("round %d done", rounds)
	}
	w.finish()
}
