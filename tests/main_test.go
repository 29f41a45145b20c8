// Package tests runs the client against a real RabbitMQ, started by
// scripts/rabbitmq.sh (make test sets AMQP_URL and the TLS fixture paths).
// Without AMQP_URL the tests skip, unless CI is set: then they fail.
package tests

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env returns the environment variable name, or skips (fails in CI) when it
// is not set.
func env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set; CI must run the tests against a broker (make test)", name)
		}
		t.Skipf("%s is not set: run `make test` to start a RabbitMQ and run against it", name)
	}
	return v
}

func brokerURL(t testing.TB) string { return env(t, "AMQP_URL") }

// ctxT returns a context bounded for one test step.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects with cfg and closes the connection when the test ends.
func dial(t testing.TB, cfg amqp.Config) *amqp.Conn {
	t.Helper()
	c, err := amqp.DialConfig(ctxT(t), brokerURL(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

func channel(t testing.TB, c *amqp.Conn) *amqp.Channel {
	t.Helper()
	ch, err := c.Channel(ctxT(t))
	require.NoError(t, err)
	return ch
}

// tempQueue declares a server-named, exclusive, auto-delete queue.
func tempQueue(t testing.TB, ch *amqp.Channel) string {
	t.Helper()
	q, err := ch.QueueDeclare(ctxT(t), "", amqp.QueueOptions{Exclusive: true, AutoDelete: true})
	require.NoError(t, err)
	return q.Name
}
