package amqp

import (
	"context"
	"maps"
	"time"

	"github.com/amqproto/amqproto/internal/actor"
	"github.com/amqproto/amqproto/internal/sansio"
)

// Tracer observes what a connection does, for tracing and metrics (the
// model is pgx's QueryTracer; the module github.com/amqproto/amqproto/otelamqp
// implements it with OpenTelemetry). Set it in Config.Tracer; a nil Tracer
// costs nothing.
//
// Each method says on which goroutine it runs. Those that follow a call
// (publish, a synchronous method, an acknowledgement) run on the caller's
// goroutine, before the call returns. Those that follow something the
// broker did (a confirm, a delivery to a consumer, connection.blocked, a
// recovery) run on the connection's tracer goroutine, one at a time and in
// the order they happened: the connection's own goroutines only queue
// them, so a slow Tracer never stalls the connection (the queue grows
// instead). That goroutine exists only when a Tracer is set, and
// Conn.Close waits for it to deliver every event; a Tracer method that
// never returns, or that calls Conn.Close, makes Close wait for ever.
//
// A Tracer is shared by every channel of the connection: its methods must
// be safe for concurrent use.
type Tracer interface {
	// TracePublishStart runs on the caller's goroutine when Publish
	// starts, before the message is encoded. The context it returns is
	// passed to TracePublishEnd and TraceConfirm. It may add headers to the
	// message with data.SetHeader (for trace context propagation); the
	// caller's Table is not modified.
	TracePublishStart(ctx context.Context, ch *Channel, data *TracePublishStartData) context.Context
	// TracePublishEnd runs on the caller's goroutine when Publish returns:
	// the message was handed to the connection (data.Err nil), or not.
	TracePublishEnd(ctx context.Context, ch *Channel, data TracePublishEndData)
	// TraceConfirm runs on the tracer goroutine when a publish in confirm
	// mode is settled: acked, nacked, returned, or its outcome lost with
	// the channel.
	TraceConfirm(ctx context.Context, ch *Channel, data TraceConfirmData)
	// TraceDelivery runs when a delivery is received: on the tracer
	// goroutine for a consumer's delivery, on the caller's for Get. The
	// Delivery is the one handed over: read it, do not modify it.
	TraceDelivery(ctx context.Context, d *Delivery)
	// TraceSettle runs on the caller's goroutine when Ack, Nack or Reject
	// returns.
	TraceSettle(ctx context.Context, d *Delivery, data TraceSettleData)
	// TraceCallStart runs on the caller's goroutine when a synchronous
	// method (declare, bind, delete, purge, qos, confirm.select, tx, get)
	// starts; the context it returns is passed to TraceCallEnd.
	TraceCallStart(ctx context.Context, ch *Channel, data TraceCallStartData) context.Context
	// TraceCallEnd runs on the caller's goroutine when it returns.
	TraceCallEnd(ctx context.Context, ch *Channel, data TraceCallEndData)
	// TraceConn runs on the tracer goroutine when the connection opens,
	// is blocked or unblocked, loses its socket and recovers, or ends.
	TraceConn(c *Conn, ev TraceConnEvent)
}

// TracePublishStartData describes a message about to be published.
type TracePublishStartData struct {
	// Publishing is the message: a copy of the caller's, whose Headers
	// must not be modified but through SetHeader.
	Publishing *Publishing
	copied     bool
}

// SetHeader sets a header on the message about to be published. The first
// call copies the headers, so that the caller's Table stays as it was.
func (d *TracePublishStartData) SetHeader(key string, value any) {
	if !d.copied {
		d.Publishing.Headers = maps.Clone(d.Publishing.Headers)
		if d.Publishing.Headers == nil {
			d.Publishing.Headers = Table{}
		}
		d.copied = true
	}
	d.Publishing.Headers[key] = value
}

// TracePublishEndData is how a Publish call ended.
type TracePublishEndData struct {
	// Confirmation is the publish's outcome to come, nil when the channel
	// is not in confirm mode or the publish failed.
	Confirmation *Confirmation
	Err          error // why the message was not sent
}

// TraceConfirmData is the outcome of a publish.
type TraceConfirmData struct {
	Confirmation *Confirmation // the publish's, settled
	Err          error         // Confirmation.Err(): nil when acked and not returned
}

// SettleOp says how a delivery was settled.
type SettleOp uint8

// The ways to settle a delivery.
const (
	SettleAck SettleOp = iota + 1
	SettleNack
	SettleReject
)

// TraceSettleData describes an Ack, Nack or Reject.
type TraceSettleData struct {
	Op       SettleOp // ack, nack or reject
	Multiple bool     // every earlier delivery of the channel too
	Requeue  bool     // nack and reject: back to the queue
	// Received is when the delivery was received (zero when it was
	// received before the Tracer could see it).
	Received time.Time
	Err      error // what the Ack, Nack or Reject returned
}

// TraceCallStartData names a synchronous method.
type TraceCallStartData struct {
	Method string // the AMQP method, such as "queue.declare"
}

// TraceCallEndData is how a synchronous method ended.
type TraceCallEndData struct {
	Err error // what the call returned
}

// TraceConnKind says what happened to a connection.
type TraceConnKind uint8

// What TraceConn reports.
const (
	ConnOpened     TraceConnKind = iota + 1 // Addr is the broker
	ConnBlocked                             // Reason is the broker's
	ConnUnblocked                           //
	ConnRecovering                          // Err is why the socket was lost
	ConnRecovered                           // Addr and Generation are the new socket's
	ConnClosed                              // Err is why: ErrConnectionClosed after Close
)

// TraceConnEvent is something that happened to a connection.
type TraceConnEvent struct {
	Kind       TraceConnKind // what happened
	Addr       string        // the broker's address (opened, recovered)
	Reason     string        // the broker's reason (blocked)
	Generation uint64        // the socket's generation (see Conn.Generation)
	Err        error         // why (recovering, closed)
}

// traceEvent is an event queued for the tracer goroutine.
type traceEvent struct {
	conf *Confirmation
	d    Delivery
	conn *TraceConnEvent
}

// tracing runs a Tracer's events from the loop on a goroutine of its own.
type tracing struct {
	t    Tracer
	q    *actor.Mailbox[traceEvent]
	done chan struct{}
}

// newTracing returns the event queue of a Tracer; nil without one.
func newTracing(t Tracer) *tracing {
	if t == nil {
		return nil
	}
	return &tracing{t: t, q: actor.NewMailbox[traceEvent](), done: make(chan struct{})}
}

// start starts the tracer goroutine of c.
func (tr *tracing) start(c *Conn) {
	if tr == nil {
		return
	}
	// The tracer goroutine is owned by the Conn; it exits once the
	// connection has ended for good (see Conn.end) and every queued event
	// was delivered. Conn.Close waits for it.
	go tr.run(c)
}

func (tr *tracing) run(c *Conn) {
	defer close(tr.done)
	var spare []traceEvent
	for {
		items, closed, _ := tr.q.Take(spare)
		for i := range items {
			tr.deliver(c, &items[i])
		}
		spare = items
		if len(items) > 0 {
			continue
		}
		if closed {
			return
		}
		<-tr.q.Signal()
	}
}

func (tr *tracing) deliver(c *Conn, ev *traceEvent) {
	switch {
	case ev.conf != nil:
		pt := ev.conf.trace
		tr.t.TraceConfirm(pt.ctx, pt.ch, TraceConfirmData{Confirmation: ev.conf, Err: ev.conf.Err()})
	case ev.conn != nil:
		tr.t.TraceConn(c, *ev.conn)
	default:
		tr.t.TraceDelivery(context.Background(), &ev.d)
	}
}

// conn queues a connection event.
func (tr *tracing) conn(ev TraceConnEvent) {
	if tr != nil {
		tr.q.Push(traceEvent{conn: &ev})
	}
}

// stop queues the last event: the tracer goroutine exits once it is
// delivered. It never waits: it runs under Conn.mu.
func (tr *tracing) stop(ev TraceConnEvent) {
	if tr == nil {
		return
	}
	tr.conn(ev)
	tr.q.Close(nil)
}

// wait waits for the tracer goroutine to exit, after stop.
func (tr *tracing) wait() {
	if tr != nil {
		<-tr.done
	}
}

// traceRecovery reports a socket's loss and its recovery.
func (c *Conn) traceRecovery(ev RecoveryEvent) {
	switch ev.Kind {
	case Recovering:
		c.tr.conn(TraceConnEvent{Kind: ConnRecovering, Err: ev.Err, Generation: ev.Generation})
	case Recovered:
		c.tr.conn(TraceConnEvent{Kind: ConnRecovered, Addr: ev.Addr, Generation: ev.Generation})
	}
}

// publishTrace is what a traced publish keeps for TraceConfirm.
type publishTrace struct {
	ctx context.Context
	ch  *Channel
}

// observer is told by the loop of the confirms it settles and of
// connection.blocked; it only queues them, never calling the Tracer on the
// loop.
type observer struct{ tr *tracing }

func (o observer) Settled(out *actor.Outcome) {
	if c, _ := out.Owner.(*Confirmation); c != nil && c.trace != nil {
		o.tr.q.Push(traceEvent{conf: c})
	}
}

func (o observer) Blocked(b actor.Blocking) {
	kind := ConnUnblocked
	if b.Blocked {
		kind = ConnBlocked
	}
	o.tr.conn(TraceConnEvent{Kind: kind, Reason: b.Reason})
}

// publishTraced is Publish with the Tracer's hooks: p is a copy, which
// the Tracer may give headers.
func (ch *Channel) publishTraced(ctx context.Context, p Publishing, t Tracer) (*Confirmation, error) {
	data := TracePublishStartData{Publishing: &p}
	ctx = t.TracePublishStart(ctx, ch, &data)
	c, err := ch.publish(ctx, &p, &publishTrace{ctx: ctx, ch: ch})
	t.TracePublishEnd(ctx, ch, TracePublishEndData{Confirmation: c, Err: err})
	return c, err
}

// callTraced is call with the Tracer's hooks.
func (ch *Channel) callTraced(ctx context.Context, m sansio.Method, t Tracer) (sansio.Method, error) {
	ctx = t.TraceCallStart(ctx, ch, TraceCallStartData{Method: m.ID().String()})
	reply, err := ch.callUntraced(ctx, m)
	t.TraceCallEnd(ctx, ch, TraceCallEndData{Err: err})
	return reply, err
}

// received reports a consumer's delivery to the tracer goroutine.
func (tr *tracing) received(d *Delivery) {
	d.received = time.Now().UnixNano()
	tr.q.Push(traceEvent{d: *d})
}

// settleTraced is Ack, Nack or Reject with the Tracer's hook.
func (d *Delivery) settleTraced(ctx context.Context, m sansio.Method, data TraceSettleData) error {
	err := d.ch.settle(ctx, d.gen, m)
	if t := d.ch.conn.tracer(); t != nil {
		if d.received != 0 {
			data.Received = time.Unix(0, d.received)
		}
		data.Err = err
		// A copy: handing d itself to an interface method would make
		// every Delivery a caller ranges over escape to the heap, with or
		// without a tracer.
		dc := *d
		t.TraceSettle(ctx, &dc, data)
	}
	return err
}

// tracer returns the connection's Tracer, or nil.
func (c *Conn) tracer() Tracer {
	if c.tr == nil {
		return nil
	}
	return c.tr.t
}
