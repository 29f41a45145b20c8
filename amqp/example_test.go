package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
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

// Shut a worker down gracefully on Ctrl-C or SIGTERM. The signal's context
// stops the loop; the acknowledgement of work already done uses
// context.WithoutCancel, so that it is not refused because the signal came
// while the work ran (the message would then be redelivered and done
// twice). Deliveries not yet processed are left unacknowledged: the broker
// requeues them when the connection closes.
func Example_gracefulShutdown() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := amqp.Dial(ctx, "amqp://guest:guest@localhost:5672/")
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		// Close after the signal: bounded, but not by the signal's ctx.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := conn.Close(closeCtx); err != nil {
			log.Print(err)
		}
	}()
	ch, err := conn.Channel(ctx)
	if err != nil {
		log.Fatal(err)
	}
	cons, err := ch.Consume(ctx, "jobs", amqp.ConsumeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for {
		select {
		case <-ctx.Done():
			log.Print("stopping; unprocessed deliveries go back to the queue")
			return
		case d, ok := <-cons.Deliveries():
			if !ok {
				log.Print("consumer ended: ", cons.Err())
				return
			}
			fmt.Printf("processing %s\n", d.Body)
			ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := d.Ack(ackCtx, false)
			cancel()
			if err != nil {
				log.Print(err) // the channel ended: the broker redelivers it
			}
		}
	}
}

// Request/reply with RabbitMQ's direct reply-to: consume the pseudo-queue
// amq.rabbitmq.reply-to (auto-ack) on the channel that publishes the
// request, and match the reply by its correlation id. The server publishes
// its reply to the request's ReplyTo through the default exchange, with
// the request's CorrelationID.
func ExampleChannel_Consume_directReplyTo() {
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
	const replyTo = "amq.rabbitmq.reply-to"
	replies, err := ch.Consume(ctx, replyTo, amqp.ConsumeOptions{AutoAck: true})
	if err != nil {
		log.Fatal(err)
	}
	const id = "request-1" // unique per request
	_, err = ch.Publish(ctx, amqp.Publishing{
		RoutingKey: "rpc",
		Properties: amqp.Properties{ReplyTo: replyTo, CorrelationID: id},
		Body:       []byte("ping"),
	})
	if err != nil {
		log.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		select {
		case d, ok := <-replies.Deliveries():
			if !ok {
				log.Fatal(replies.Err())
			}
			if d.CorrelationID != id {
				continue // a late reply to an earlier request
			}
			fmt.Printf("reply: %s\n", d.Body)
			return
		case <-tctx.Done():
			log.Print("no reply in time")
			return
		}
	}
}

// Read an integer header whatever width its sender chose.
func ExampleInt64() {
	headers := amqp.Table{"attempt": int8(3), "size": uint32(1 << 20), "note": "x"}
	for _, k := range []string{"attempt", "size", "note"} {
		n, ok := amqp.Int64(headers[k])
		fmt.Println(k, n, ok)
	}
	// Output:
	// attempt 3 true
	// size 1048576 true
	// note 0 false
}

// Read the dead-lettering history RabbitMQ records in x-death (here, the
// headers of a message rejected once from the queue "work").
func ExampleDeaths() {
	headers := amqp.Table{"x-death": []any{amqp.Table{
		"queue": "work", "reason": "rejected", "count": int64(1),
		"exchange": "", "routing-keys": []any{"work"}, "time": time.Unix(1700000000, 0),
	}}}
	for _, d := range amqp.Deaths(headers) {
		fmt.Printf("%d × %s from %s\n", d.Count, d.Reason, d.Queue)
	}
	// Output:
	// 1 × rejected from work
}

// A producer with confirms and a worker that survive broker restarts,
// node failures and network cuts without any reconnect code: the Conn
// walks the cluster's addresses and restores its channels, the queue and
// its binding, and the consumer, whose Deliveries stay open.
func Example_recovery() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := amqp.DialConfig(ctx, "", amqp.Config{
		Addresses: []string{"amqp://guest:guest@rabbit1:5672/", "amqp://guest:guest@rabbit2:5672/",
			"amqp://guest:guest@rabbit3:5672/"},
		Heartbeat: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	go func() {
		for {
			select {
			case ev := <-conn.RecoveryEvents():
				log.Printf("recovery: %v (%v) %s", ev.Kind, ev.Err, ev.Addr)
			case <-conn.Context().Done():
				return
			}
		}
	}()

	ch, err := conn.Channel(ctx)
	if err != nil {
		log.Fatal(err)
	}
	q, err := ch.QueueDeclare(ctx, "jobs", amqp.QueueOptions{Durable: true, Args: amqp.Table{"x-queue-type": "quorum"}})
	if err != nil {
		log.Fatal(err)
	}
	cons, err := ch.Consume(ctx, q.Name, amqp.ConsumeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for d := range cons.Deliveries() {
			log.Printf("working on %s", d.Body)
			// Ack even after SIGTERM: the work is done.
			if err := d.Ack(context.WithoutCancel(ctx), false); errors.Is(err, amqp.ErrStaleDelivery) {
				log.Print("received before a recovery: the broker delivers it again")
			}
		}
	}()

	pub, err := conn.Channel(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := pub.Confirm(ctx); err != nil {
		log.Fatal(err)
	}
	for i := 0; ctx.Err() == nil; i++ {
		// During a recovery Publish waits for it, within ctx.
		conf, err := pub.Publish(ctx, amqp.Publishing{RoutingKey: q.Name,
			Properties: amqp.Properties{DeliveryMode: amqp.Persistent}, Body: fmt.Appendf(nil, "job %d", i)})
		if err != nil {
			break // ctx ended, or the connection ended for good
		}
		switch err := conf.Wait(ctx); {
		case err == nil:
		case errors.Is(err, amqp.ErrOutcomeUnknown):
			log.Printf("job %d: the socket died before its confirm; publish it again if it must get there", i)
		default:
			log.Printf("job %d: %v", i, err)
		}
	}
}
