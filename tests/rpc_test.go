package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
)

// rpcClient is the request side of amqp/example_test.go's
// ExampleChannel_Consume_directReplyTo: unlike the RPC tutorial's rpcCall,
// one reply consumer (on directReplyTo) serves many calls.
type rpcClient struct {
	ch      *amqp.Channel
	replies *amqp.Consumer
}

func newRPCClient(ctx context.Context, ch *amqp.Channel) (*rpcClient, error) {
	// Consume the pseudo-queue, auto-ack, before the first request.
	replies, err := ch.Consume(ctx, directReplyTo, amqp.ConsumeOptions{AutoAck: true})
	if err != nil {
		return nil, err
	}
	return &rpcClient{ch: ch, replies: replies}, nil
}

// call sends body to queue and waits for the reply with its correlation
// id, or for ctx to end. One call at a time: a reply to an abandoned call
// is skipped by the next one.
func (c *rpcClient) call(ctx context.Context, queue string, body []byte) ([]byte, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	_, err := c.ch.Publish(ctx, amqp.Publishing{RoutingKey: queue, Body: body,
		Properties: amqp.Properties{ReplyTo: directReplyTo, CorrelationID: id}})
	if err != nil {
		return nil, err
	}
	for {
		select {
		case d, ok := <-c.replies.Deliveries():
			if !ok {
				return nil, c.replies.Err()
			}
			if d.CorrelationID == id {
				return d.Body, nil
			}
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// serveUpper answers every request on queue with its body in upper case,
// until its consumer ends.
func serveUpper(ctx context.Context, ch *amqp.Channel, queue string) (*amqp.Consumer, error) {
	requests, err := ch.Consume(ctx, queue, amqp.ConsumeOptions{AutoAck: true})
	if err != nil {
		return nil, err
	}
	// The server's goroutine ends when its consumer does.
	go func() {
		for d := range requests.Deliveries() {
			_, _ = ch.Publish(context.Background(), amqp.Publishing{RoutingKey: d.ReplyTo,
				Properties: amqp.Properties{CorrelationID: d.CorrelationID},
				Body:       []byte(strings.ToUpper(string(d.Body)))})
		}
	}()
	return requests, nil
}

func TestDirectReplyTo(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	serverCh := channel(t, c)
	queue := exclusiveQueue(t, serverCh)
	server, err := serveUpper(ctxT(t), serverCh, queue)
	require.NoError(t, err)

	client, err := newRPCClient(ctxT(t), channel(t, c))
	require.NoError(t, err)
	for _, word := range []string{"ping", "pong", "done"} {
		ctx, cancel := context.WithTimeout(ctxT(t), 5*time.Second)
		reply, err := client.call(ctx, queue, []byte(word))
		cancel()
		require.NoError(t, err)
		require.Equal(t, strings.ToUpper(word), string(reply))
	}

	// Nobody serves this queue: the ctx bounds the wait.
	nobody := exclusiveQueue(t, serverCh)
	ctx, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
	defer cancel()
	_, err = client.call(ctx, nobody, []byte("hello?"))
	require.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, server.Cancel(ctxT(t)))
	waitClosed(t, server.Done(), testTimeout, "the server")
}
