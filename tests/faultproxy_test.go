package tests

import (
	"net/url"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/amqproto/amqproto/internal/faultproxy"
	"github.com/stretchr/testify/require"
)

// proxied starts a fault proxy in front of the test broker and returns it
// with the URL that goes through it.
func proxied(t *testing.T) (*faultproxy.Proxy, string) {
	t.Helper()
	u, err := url.Parse(brokerURL(t))
	require.NoError(t, err)
	p, err := faultproxy.New(u.Host)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	u.Host = p.Addr()
	return p, u.String()
}

// requireEnds waits for the connection to end.
func requireEnds(t *testing.T, c *amqp.Conn, what string) {
	t.Helper()
	select {
	case <-c.Context().Done():
	case <-ctxT(t).Done():
		t.Fatalf("the connection is still open after %s", what)
	}
}

// The proxy's faults reach the client as a real network's would: a cut
// ends the connection at once, and a blackholed link only by heartbeat.
func TestFaultProxyCutEndsTheConnection(t *testing.T) {
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{Recovery: amqp.Recovery{Disable: true}})
	channel(t, c)
	require.Equal(t, 1, p.Accepted())
	p.Cut()
	requireEnds(t, c, "a cut")
}

func TestFaultProxyBlackholeEndsTheConnectionByHeartbeat(t *testing.T) {
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{Heartbeat: time.Second, Recovery: amqp.Recovery{Disable: true}})
	channel(t, c)
	p.Blackhole(true)
	start := time.Now()
	requireEnds(t, c, "a blackhole with 1 s heartbeats")
	require.GreaterOrEqual(t, time.Since(start), time.Second, "only the heartbeat can tell")
	p.Blackhole(false)
}
