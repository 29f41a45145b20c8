// Package clustertest gives tests the 3-node RabbitMQ cluster that
// `make test` starts (`scripts/rabbitmq.sh cluster-up`): the nodes' URLs,
// and ways to kill, stop and start a node and to wait for a quorum queue to
// have all its members again. Every wait polls the broker; none sleeps a
// fixed time.
//
// It reads the variables `scripts/rabbitmq.sh cluster-env` prints
// (AMQP_CLUSTER_URLS, AMQP_CLUSTER_NODES, AMQP_CLUSTER_CTL,
// AMQP_CLUSTER_SCRIPT). Without them a test skips, or fails when CI is set,
// by the rule of internal/testenv.
//
// Nodes are numbered from 1, as in the script and the node names
// (rabbit1@localhost is node 1).
package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/testenv"
)

// commandTimeout bounds one call of the script or the CLI: long enough for
// a node to boot and rejoin on a loaded 2-core machine.
const commandTimeout = 4 * time.Minute

// pollInterval spaces the checks of a poll; each rabbitmqctl call costs
// about 0.6 s anyway.
const pollInterval = 200 * time.Millisecond

// lockTimeout bounds the wait for the cluster while another test uses it.
const lockTimeout = 10 * time.Minute

// Cluster is the test cluster as the environment describes it.
type Cluster struct {
	urls   []string
	nodes  []string
	ctl    string
	script string
}

// New returns the cluster, for the test's use alone until it ends (other
// tests that call New wait, across processes), after making sure every
// node runs and sees the others (a node an earlier test left down is
// started again). It skips the test, or fails it in CI, when the
// environment lacks the cluster.
func New(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{
		urls:   strings.Split(testenv.Get(t, "AMQP_CLUSTER_URLS"), ","),
		nodes:  strings.Split(testenv.Get(t, "AMQP_CLUSTER_NODES"), ","),
		ctl:    testenv.Get(t, "AMQP_CLUSTER_CTL"),
		script: testenv.Get(t, "AMQP_CLUSTER_SCRIPT"),
	}
	if len(c.urls) != len(c.nodes) || len(c.urls) < 2 {
		t.Fatalf("clustertest: AMQP_CLUSTER_URLS and AMQP_CLUSTER_NODES name %d and %d nodes",
			len(c.urls), len(c.nodes))
	}
	c.lockCluster(t)
	c.run(t, c.script, "cluster-up")
	return c
}

// Size is the number of nodes.
func (c *Cluster) Size() int { return len(c.urls) }

// URL is node n's AMQP URL (guest, vhost /).
func (c *Cluster) URL(n int) string { return c.urls[c.index(n)] }

// URLs are every node's AMQP URL, node 1 first.
func (c *Cluster) URLs() []string { return append([]string(nil), c.urls...) }

// Addr is node n's "host:port", e.g. as a faultproxy target.
func (c *Cluster) Addr(n int) string {
	u, err := url.Parse(c.URL(n))
	if err != nil {
		panic(fmt.Sprintf("clustertest: node %d's URL %q: %v", n, c.URL(n), err))
	}
	return u.Host
}

// Node is node n's Erlang name ("rabbit1@localhost").
func (c *Cluster) Node(n int) string { return c.nodes[c.index(n)] }

// NodeNumber is the number of the node named name, or 0 when none is.
func (c *Cluster) NodeNumber(name string) int {
	for i, node := range c.nodes {
		if node == name {
			return i + 1
		}
	}
	return 0
}

func (c *Cluster) index(n int) int {
	if n < 1 || n > len(c.urls) {
		panic(fmt.Sprintf("clustertest: no node %d (nodes are 1 to %d)", n, len(c.urls)))
	}
	return n - 1
}

// KillNode kills node n's Erlang VM with SIGKILL, as a crash would, and
// returns once the process is gone. The node is started again when the
// test ends, unless the test did it.
func (c *Cluster) KillNode(t testing.TB, n int) {
	t.Helper()
	c.index(n)
	c.restartAtCleanup(t, n)
	c.run(t, c.script, "node-kill", fmt.Sprint(n))
}

// StopNode stops node n gracefully (its clients get 320
// CONNECTION_FORCED). The node is started again when the test ends, unless
// the test did it.
func (c *Cluster) StopNode(t testing.TB, n int) {
	t.Helper()
	c.index(n)
	c.restartAtCleanup(t, n)
	c.run(t, c.script, "node-stop", fmt.Sprint(n))
}

// StartNode starts node n (a no-op when it runs) and returns when it
// answers AMQP and sees every node of the cluster running.
func (c *Cluster) StartNode(t testing.TB, n int) {
	t.Helper()
	c.index(n)
	c.run(t, c.script, "node-start", fmt.Sprint(n))
}

// restartAtCleanup leaves the cluster whole for the next test.
func (c *Cluster) restartAtCleanup(t testing.TB, n int) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		if out, err := command(ctx, c.script, "node-start", fmt.Sprint(n)).CombinedOutput(); err != nil {
			t.Errorf("clustertest: restarting node %d after the test: %v\n%s", n, err, out)
		}
	})
}

// WaitQuorumOnline waits until the quorum queue (vhost /) has a leader and
// every other member follows it, e.g. after a node that holds a member
// restarted.
func (c *Cluster) WaitQuorumOnline(t testing.TB, queue string) {
	t.Helper()
	c.run(t, c.script, "quorum-ready", queue)
}

// QuorumLeader returns the number of the node that leads the quorum queue
// (vhost /) as the first live node reports it, or 0 when it has no leader
// at the moment (an election is under way). The queue must be listed.
func (c *Cluster) QuorumLeader(t testing.TB, queue string) int {
	t.Helper()
	n, listed := c.quorumLeader(t, queue)
	if !listed {
		t.Fatalf("clustertest: no queue %q in vhost /", queue)
	}
	return n
}

// quorumLeader is QuorumLeader, with listed false when no live node lists
// the queue.
func (c *Cluster) quorumLeader(t testing.TB, queue string) (n int, listed bool) {
	t.Helper()
	var infos []struct {
		Name   string `json:"name"`
		Leader string `json:"leader"`
	}
	out := c.CtlAny(t, "list_queues", "--formatter", "json", "name", "leader")
	if err := json.Unmarshal(out, &infos); err != nil {
		t.Fatalf("clustertest: list_queues: %v\n%s", err, out)
	}
	for _, q := range infos {
		if q.Name == queue {
			return c.NodeNumber(q.Leader), true
		}
	}
	return 0, false
}

// WaitQuorumLeader polls until the quorum queue (vhost /) has a leader, as
// after its leader's node died, and returns that leader's node number.
// Until a new leader is elected, the survivors may not list the queue at
// all (RabbitMQ 3.10 lists a quorum queue through the node of its leader,
// and the record still names the dead one): that is waited out too.
func (c *Cluster) WaitQuorumLeader(t testing.TB, queue string) int {
	t.Helper()
	deadline := time.Now().Add(commandTimeout)
	for logged := false; ; {
		n, listed := c.quorumLeader(t, queue)
		if n != 0 {
			return n
		}
		if !listed && !logged {
			t.Logf("clustertest: quorum queue %s not listed while it has no leader", queue)
			logged = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("clustertest: quorum queue %s has no leader after %v (listed: %v)", queue, commandTimeout, listed)
		}
		time.Sleep(pollInterval) // polling the broker, not synchronisation
	}
}

// CtlAny runs rabbitmqctl with args against the first node that answers,
// and returns its standard output. Failing on every node fails the test.
func (c *Cluster) CtlAny(t testing.TB, args ...string) []byte {
	t.Helper()
	var errs []string
	for _, node := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		cmd := command(ctx, c.ctl, append([]string{"-n", node, "--quiet"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		if err == nil {
			return out
		}
		errs = append(errs, fmt.Sprintf("%s: %v: %s", node, err, stderr.Bytes()))
	}
	t.Fatalf("clustertest: rabbitmqctl %s failed on every node:\n%s",
		strings.Join(args, " "), strings.Join(errs, "\n"))
	return nil
}

// run runs a command of the script (or the CLI) and fails the test with
// its output when it fails.
func (c *Cluster) run(t testing.TB, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := command(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("clustertest: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

// command is exec.CommandContext for the script and the CLI: when ctx ends,
// the process is killed, and its output is no longer waited for after a
// grace period (a node it started may hold a copy of its pipes).
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 10 * time.Second
	return cmd
}
