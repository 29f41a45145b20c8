package tests

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// uniqueName returns a queue or exchange name that no other test (or run)
// uses: prefix, the test's name and a random suffix.
func uniqueName(t testing.TB, prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", ".", " ", "_", "#", "_", "*", "_").Replace(t.Name())
	return prefix + "." + name + "." + hex.EncodeToString(b[:])
}

// dialURL connects to url with cfg and closes the connection when the test
// ends.
func dialURL(t testing.TB, url string, cfg amqp.Config) *amqp.Conn {
	t.Helper()
	c, err := amqp.DialConfig(ctxT(t), url, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// cleanupQueue deletes queue when the test ends, on a channel of its own
// (the test's channels may have been closed by an error).
func cleanupQueue(t testing.TB, c *amqp.Conn, queue string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if ch, err := c.Channel(ctx); err == nil {
			_, _ = ch.QueueDelete(ctx, queue, false, false)
			_ = ch.Close(ctx)
		}
	})
}

// cleanupExchange deletes exchange when the test ends.
func cleanupExchange(t testing.TB, c *amqp.Conn, exchange string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if ch, err := c.Channel(ctx); err == nil {
			_ = ch.ExchangeDelete(ctx, exchange, false)
			_ = ch.Close(ctx)
		}
	})
}

// confirmChannel opens a channel in confirm mode.
func confirmChannel(t testing.TB, c *amqp.Conn) *amqp.Channel {
	t.Helper()
	ch := channel(t, c)
	require.NoError(t, ch.Confirm(ctxT(t)))
	return ch
}

// publishConfirmed publishes body to queue through the default exchange and
// waits for the broker's ack. ch must be in confirm mode.
func publishConfirmed(t testing.TB, ch *amqp.Channel, exchange, key string, body []byte) {
	t.Helper()
	ctx := ctxT(t)
	conf, err := ch.Publish(ctx, amqp.Publishing{Exchange: exchange, RoutingKey: key, Body: body})
	require.NoError(t, err)
	require.NoError(t, conf.Wait(ctx))
}

// queueLen returns the number of ready messages in queue.
func queueLen(t testing.TB, ch *amqp.Channel, queue string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(ctxT(t), queue)
	require.NoError(t, err)
	return int(q.Messages)
}

// userURL returns AMQP_URL with the user name and password replaced.
func userURL(t testing.TB, user, password string) string {
	t.Helper()
	u, err := url.Parse(brokerURL(t))
	require.NoError(t, err)
	u.User = url.UserPassword(user, password)
	return u.String()
}

// vhostURL returns AMQP_URL with the virtual host replaced.
func vhostURL(t testing.TB, vhost string) string {
	t.Helper()
	u, err := url.Parse(brokerURL(t))
	require.NoError(t, err)
	u.Path = "/" + vhost
	u.RawPath = "/" + url.PathEscape(vhost)
	return u.String()
}

// caPool loads AMQP_TLS_CA, the CA that signed the broker's certificate.
func caPool(t testing.TB) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(env(t, "AMQP_TLS_CA"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem), "no certificate in AMQP_TLS_CA")
	return pool
}

// clientCert loads a client certificate and key from the files named by the
// environment variables certVar and keyVar.
func clientCert(t testing.TB, certVar, keyVar string) tls.Certificate {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(env(t, certVar), env(t, keyVar))
	require.NoError(t, err)
	return cert
}

// rabbitmqctl runs the broker's control tool (about a second per call).
func rabbitmqctl(t testing.TB, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, env(t, "AMQP_RABBITMQCTL"), args...).CombinedOutput()
	require.NoError(t, err, "rabbitmqctl %s: %s", strings.Join(args, " "), out)
}

// waitFor returns the first value from ch, failing the test after d.
func waitFor[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		require.True(t, ok, "%s: channel closed", what)
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing after %v", what, d)
	}
	panic("unreachable")
}

// waitClosed waits until done is closed, failing the test after d.
func waitClosed(t testing.TB, done <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: not done after %v", what, d)
	}
}

// testTimeout bounds waiting for one thing the broker should do promptly.
const testTimeout = 15 * time.Second

// exclusiveQueue declares a server-named exclusive queue that, unlike
// tempQueue's, outlives its consumers (it goes with the connection).
func exclusiveQueue(t testing.TB, ch *amqp.Channel) string {
	t.Helper()
	q, err := ch.QueueDeclare(ctxT(t), "", amqp.QueueOptions{Exclusive: true})
	require.NoError(t, err)
	return q.Name
}

// awaitQueueLen waits until queue holds want ready messages. Without
// confirms, a message may reach its queue a moment after the publishing
// channel's next reply: the broker routes asynchronously.
func awaitQueueLen(t testing.TB, ch *amqp.Channel, queue string, want int, msgAndArgs ...any) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := queueLen(t, ch, queue)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			require.Equal(t, want, got, msgAndArgs...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
