package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/amqproto/amqproto/amqp"
)

// Publish with publisher confirms and wait for the outcome with select.
func ExampleChannel_Publish_confirm() {
	ctx := context.Background()
	conn, err := amqp.Dial(ctx, "amqp://guest:guest@localhost:5672/")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	ch, err := conn.Channel(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := ch.Confirm(ctx); err != nil {
		log.Fatal(err)
	}
	conf, err := ch.Publish(ctx, amqp.Publishing{
		RoutingKey: "jobs",
		Mandatory:  true,
		Properties: amqp.Properties{ContentType: "text/plain", DeliveryMode: amqp.Persistent},
		Body:       []byte("hello"),
	})
	if err != nil {
		log.Fatal(err) // not sent
	}
	select {
	case <-conf.Done():
		switch err := conf.Err(); {
		case err == nil:
			fmt.Println("confirmed")
		case errors.Is(err, amqp.ErrReturned):
			fmt.Println("no queue took it:", conf.Returned().ReplyText)
		case errors.Is(err, amqp.ErrNacked):
			fmt.Println("the broker refused it")
		default:
			fmt.Println("channel or connection ended first:", err)
		}
	case <-time.After(5 * time.Second):
		fmt.Println("still unconfirmed; the outcome will still come")
	}
}

// Range over a consumer's deliveries; the loop ends when the consumer does.
func ExampleConsumer_Deliveries() {
	ctx := context.Background()
	conn, err := amqp.Dial(ctx, "amqp://guest:guest@localhost:5672/")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	ch, err := conn.Channel(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// A prefetch bounds how many unacknowledged deliveries this consumer holds.
	if err := ch.Qos(ctx, 50, false); err != nil {
		log.Fatal(err)
	}
	cons, err := ch.Consume(ctx, "jobs", amqp.ConsumeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for d := range cons.Deliveries() {
		fmt.Printf("%s\n", d.Body)
		if err := d.Ack(ctx, false); err != nil {
			log.Print(err)
		}
	}
	if errors.Is(cons.Err(), amqp.ErrCancelledByBroker) {
		log.Print("the queue was deleted")
	}
}

// Give up on an operation with a context: the channel stays consistent, and
// a late reply from the broker is matched and dropped.
func ExampleChannel_QueueDeclare_cancel() {
	ctx := context.Background()
	conn, err := amqp.Dial(ctx, "amqp://guest:guest@localhost:5672/")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	ch, err := conn.Channel(ctx)
	if err != nil {
		log.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = ch.QueueDeclare(tctx, "orders", amqp.QueueOptions{Durable: true})
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Println("gave up waiting; the channel is still usable")
	case errors.Is(err, amqp.ErrPreconditionFailed):
		fmt.Println("exists with other arguments; that channel is closed")
	case err != nil:
		log.Fatal(err)
	}
}
