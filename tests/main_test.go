// Package tests runs the client against a real RabbitMQ, started by
// scripts/rabbitmq.sh (make test sets AMQP_URL and the TLS fixture paths).
// Without AMQP_URL the tests skip, unless CI is set: then they fail.
package tests

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/amqproto/amqproto/amqp"
	"github.com/amqproto/amqproto/internal/testenv"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env returns the environment variable name; see testenv.Get.
func env(t testing.TB, name string) string {
	t.Helper()
	return testenv.Get(t, name)
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
	return dialURL(t, brokerURL(t), cfg)
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
