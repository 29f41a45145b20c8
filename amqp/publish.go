package amqp

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"time"

	"github.com/amqproto/amqproto/internal/actor"
	"github.com/amqproto/amqproto/internal/sansio"
)

// Delivery modes for Properties.DeliveryMode.
const (
	Transient  uint8 = 1
	Persistent uint8 = 2
)

// Properties are a message's basic properties. A zero field is absent on the
// wire.
type Properties struct {
	ContentType     string    // the body's MIME type, such as "application/json"
	ContentEncoding string    // the body's encoding, such as "gzip"
	Headers         Table     // application headers; a headers exchange routes by them
	DeliveryMode    uint8     // Transient or Persistent (stored on disk by durable queues)
	Priority        uint8     // 0 to 9, for queues with x-max-priority
	CorrelationID   string    // for the application, such as the request a reply answers
	ReplyTo         string    // the queue to reply to, such as "amq.rabbitmq.reply-to"
	Expiration      string    // a TTL in milliseconds, as a decimal string
	MessageID       string    // for the application, such as a deduplication key
	Timestamp       time.Time // whole seconds on the wire
	Type            string    // for the application: the message's type name
	UserID          string    // the publishing user; RabbitMQ checks it is the connection's
	AppID           string    // the publishing application
	ClusterID       string    // reserved in AMQP 0-9-1
}

// Publishing is a message to publish and where to.
type Publishing struct {
	Exchange   string // "" is the default exchange, which routes by queue name
	RoutingKey string // the routing key: the queue's name, for the default exchange
	// Mandatory asks the broker to return the message when no queue takes
	// it; see Confirmation.Returned and Channel.Returns.
	Mandatory bool
	Properties
	// Body is sent as is. Publish does not keep it after it returns, so
	// the caller may reuse it then; a large body may be written from
	// where it is while Publish runs (see Channel.Publish).
	Body []byte
}

// ErrNacked is the error of a publish that the broker nacked: it could not
// take responsibility for the message (for example a queue with
// x-overflow=reject-publish is full).
var ErrNacked = errors.New("amqp: message nacked by the broker")

// ErrReturned is the error of a mandatory publish that no queue took; the
// message is in Confirmation.Returned.
var ErrReturned = errors.New("amqp: message returned by the broker: no queue took it")

// Confirmation is the outcome of one publish on a channel in confirm mode.
// It is settled exactly once: acked, nacked, or failed because the channel
// or connection ended first (which says nothing about whether the broker
// got the message). Its methods are safe for concurrent use.
//
// Publish on a channel not in confirm mode returns a nil *Confirmation.
// Every method works on nil, as on a settled outcome that is an error
// matching ErrNotConfirmMode: code written for confirm mode fails with an
// error instead of a panic when the channel is not in it.
type Confirmation struct {
	p actor.Outcome
	// again is the message, kept for Recovery.RepublishUnconfirmed until
	// the broker confirms it; nil otherwise.
	again *Publishing
	trace *publishTrace // nil without a Tracer
}

// ErrNotConfirmMode is the outcome of the nil *Confirmation that Publish
// returns on a channel not in confirm mode (see Channel.Confirm): nothing
// will say whether the broker took the message.
var ErrNotConfirmMode = errors.New("amqp: the channel is not in confirm mode; no confirmation will come")

// settled is the Done channel of a nil *Confirmation.
var settled = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Done is closed when the outcome is known (at once for a nil
// *Confirmation).
func (c *Confirmation) Done() <-chan struct{} {
	if c == nil {
		return settled
	}
	return c.p.Done()
}

// Wait waits for the outcome: nil when the broker acked the message and did
// not return it; an error matching ErrReturned, ErrNacked, or the channel's
// or connection's end otherwise; ctx's error if it ends first (the outcome
// still comes later).
func (c *Confirmation) Wait(ctx context.Context) error {
	if c == nil {
		return ErrNotConfirmMode
	}
	if !c.p.Wait(ctx) {
		return context.Cause(ctx)
	}
	return c.Err()
}

// Err returns the outcome as Wait does, without waiting; nil while pending.
func (c *Confirmation) Err() error {
	if c == nil {
		return ErrNotConfirmMode
	}
	if !c.p.Settled() {
		return nil
	}
	switch {
	case c.p.Confirm == sansio.ConfirmFailed:
		return &outcomeUnknownError{cause: c.p.Err}
	case c.p.Confirm == sansio.ConfirmNack:
		return ErrNacked
	case c.p.Return != nil:
		return &ReturnError{Return: newReturn(c.p.Return)}
	}
	return nil
}

// Acked reports whether the broker acked the message; false while pending.
func (c *Confirmation) Acked() bool {
	return c != nil && c.p.Settled() && c.p.Confirm == sansio.ConfirmAck
}

// Returned returns the message the broker returned, or nil.
func (c *Confirmation) Returned() *Return {
	if c == nil || !c.p.Settled() || c.p.Return == nil {
		return nil
	}
	r := newReturn(c.p.Return)
	return &r
}

// DeliveryTag returns the publish's sequence number on its channel, the
// delivery tag of the broker's confirm. It never waits: the number is
// stored when the connection numbers the publish, as it goes out (usually
// after Publish has returned, so it is usually 0 then), and DeliveryTag
// returns 0 before that, for a publish that failed before it
// was numbered, and for a nil *Confirmation. Once Done is closed it no
// longer changes.
func (c *Confirmation) DeliveryTag() uint64 {
	if c == nil {
		return 0
	}
	return c.p.Seq()
}

// ReturnError is the error of a returned mandatory publish.
type ReturnError struct {
	Return Return // the returned message
}

// Error says the message was returned, with the broker's reason.
func (e *ReturnError) Error() string {
	return "amqp: message returned by the broker: " + e.Return.ReplyText
}

// Is makes errors.Is(err, ErrReturned) true.
func (e *ReturnError) Is(target error) bool { return target == ErrReturned }

// Return is a message the broker returned (basic.return).
type Return struct {
	ReplyCode  ReplyCode // 312 NO_ROUTE
	ReplyText  string    // the broker's reason, such as "NO_ROUTE"
	Exchange   string    // the exchange the message was published to
	RoutingKey string    // its routing key
	Properties           // its properties
	Body       []byte    // its body, owned by the receiver
}

func newReturn(m *sansio.Message) Return {
	return Return{ReplyCode: m.ReplyCode, ReplyText: m.ReplyText, Exchange: m.Exchange, RoutingKey: m.RoutingKey,
		Properties: Properties(m.Properties), Body: m.Body}
}

// Confirm puts the channel in confirm mode (confirm.select): from then on
// Publish returns a Confirmation for every message.
func (ch *Channel) Confirm(ctx context.Context) error {
	_, err := ch.call(ctx, &sansio.ConfirmSelect{})
	if err == nil {
		ch.record(func(s *settings) { s.confirm = true })
	}
	return err
}

// Publish sends a message. It waits, honouring ctx, while the broker blocks
// the connection (connection.blocked), pauses the channel (channel.flow), or
// the connection's outgoing buffer is full.
//
// When Publish returns an error, the message was not sent. When it returns
// nil, the message was handed to the connection and will be written unless
// the channel or connection ends first (a publish racing the broker's
// channel.close is lost, as it would be on the wire).
//
// Publish returns once the connection no longer refers to p.Body. A body
// of 256 KiB or more on a plain TCP or Unix socket (on Linux, amd64 and
// arm64) is not copied: it is written from the caller's memory, and
// Publish returns once the socket has taken it. When ctx ends before that,
// Publish copies what the socket has not taken and returns nil: the
// message is still sent whole, since a message cut short would break the
// connection's frames. Smaller bodies, and all bodies on other transports
// (TLS), are copied, and Publish returns without waiting for the socket.
// With Recovery.RepublishUnconfirmed, a publish in confirm mode sends the
// copy its Confirmation keeps, and Publish does not wait either.
//
// On a channel in confirm mode the returned Confirmation reports what the
// broker did with it, including that loss, also after ctx ends; otherwise
// it is nil, and its methods report ErrNotConfirmMode. A channel that has
// ended refuses publishes, also those waiting for channel.flow when it
// ends.
//
// During a recovery Publish waits for the recovered channel, within ctx. A
// publish refused because the socket had just been lost, before it was
// handed over, waits the same way and goes to the recovered channel.
func (ch *Channel) Publish(ctx context.Context, p Publishing) (*Confirmation, error) {
	if t := ch.conn.tracer(); t != nil {
		return ch.publishTraced(ctx, p, t)
	}
	return ch.publish(ctx, &p, nil)
}

// publish is Publish; pt, when not nil, goes with the Confirmation to the
// Tracer.
func (ch *Channel) publish(ctx context.Context, p *Publishing, pt *publishTrace) (*Confirmation, error) {
	m := sansio.BasicPublish{Exchange: p.Exchange, RoutingKey: p.RoutingKey, Mandatory: p.Mandatory}
	props := sansio.Properties(p.Properties)
	for {
		g, err := ch.current(ctx)
		if err != nil {
			return nil, err
		}
		var c *Confirmation
		if g.a.InConfirmMode() {
			c = ch.newConfirmation(p)
			c.trace = pt
			err = c.publish(ctx, g.a, &m, &props, p.Body)
		} else {
			err = g.a.Publish(ctx, &m, &props, p.Body, nil)
		}
		if err != nil && ch.conn.retryAfterLoss(ctx, err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// publish hands c's message to ach. With the copy kept for
// Recovery.RepublishUnconfirmed, that copy is what goes out: nobody changes
// it, so Publish need not wait for a large body to be written, and the
// caller's body is the caller's again at once.
func (c *Confirmation) publish(ctx context.Context, ach *actor.Channel, m *sansio.BasicPublish, props *sansio.Properties, body []byte) error {
	if c.again != nil {
		return ach.PublishKept(ctx, m, props, c.again.Body, &c.p)
	}
	return ach.Publish(ctx, m, props, body, &c.p)
}

// newConfirmation makes the Confirmation of publishing p. With
// Recovery.RepublishUnconfirmed it keeps a copy of p (the caller may reuse
// its body once Publish returns), to publish it again after a recovery.
func (ch *Channel) newConfirmation(p *Publishing) *Confirmation {
	c := &Confirmation{}
	c.p.Owner = c
	if ch.conn.cfg.Recovery.RepublishUnconfirmed && !ch.conn.cfg.Recovery.Disable {
		again := *p
		again.Body = bytes.Clone(p.Body)
		again.Headers = maps.Clone(p.Headers)
		c.again = &again
		c.p.Keep = ch.keep
	}
	return c
}

// keep takes back, from the loop, a publish whose socket was lost before
// its confirm came, to publish it again once the channel is recovered. It
// must not block.
func (ch *Channel) keep(o *actor.Outcome, err error) bool {
	if !connectionLevel(err) {
		return false
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.err != nil || ch.closing {
		return false
	}
	ch.carried = append(ch.carried, o.Owner.(*Confirmation))
	return true
}

// republish publishes again, on ach, the publishes taken back from the lost
// socket, in order, before anyone else can publish on ach. A failure of
// ach's socket puts the rest back for the next attempt.
func (ch *Channel) republish(ctx context.Context, ach *actor.Channel) error {
	ch.mu.Lock()
	carried := ch.carried
	ch.carried = nil
	ch.mu.Unlock()
	for i, c := range carried {
		p := c.again
		m := sansio.BasicPublish{Exchange: p.Exchange, RoutingKey: p.RoutingKey, Mandatory: p.Mandatory}
		props := sansio.Properties(p.Properties)
		c.p.Rearm()
		err := c.publish(ctx, ach, &m, &props, p.Body)
		switch {
		case err == nil:
		case connectionLevel(err):
			ch.mu.Lock()
			ch.carried = append(carried[i:], ch.carried...)
			ch.mu.Unlock()
			return err
		default:
			c.p.Fail(err)
		}
	}
	return nil
}

// failCarried settles, with cause, the publishes taken back for a recovery
// that will not come: the channel ended for good.
func (ch *Channel) failCarried(carried []*Confirmation, cause error) {
	for _, c := range carried {
		c.p.Fail(cause)
	}
}

// Confirmations returns a channel that receives the Confirmation of every
// publish made after the first call, in the order the broker settles them.
// It is closed when the channel ends. Read it: the broker's confirms queue
// up for it (each publish's Confirmation can also be awaited directly).
func (ch *Channel) Confirmations() <-chan *Confirmation {
	ch.confirmOnce.Do(func() {
		ch.confirms = make(chan *Confirmation, 64)
		var first *actor.Mailbox[*actor.Outcome]
		ch.record(func(s *settings) {
			s.outcomes = true
			ch.gen.a.EnableOutcomes()
			first = ch.gen.a.Outcomes
		})
		// The forwarder is owned by the channel; it exits when the channel
		// has ended for good and every outcome was delivered, or when the
		// connection was closed.
		go forwardGenerations(first, ch.nextOutcomes, ch.confirms, func(p **actor.Outcome) *Confirmation {
			return (*p).Owner.(*Confirmation)
		}, func(p *actor.Outcome) bool {
			select {
			case ch.confirms <- p.Owner.(*Confirmation):
				return true
			default:
				return false
			}
		}, ch.conn.closing)
	})
	return ch.confirms
}

func (ch *Channel) nextOutcomes(prev *actor.Mailbox[*actor.Outcome]) *actor.Mailbox[*actor.Outcome] {
	return nextOf(ch, prev, func(a *actor.Channel) *actor.Mailbox[*actor.Outcome] { return a.Outcomes })
}

func (ch *Channel) nextReturns(prev *actor.Mailbox[sansio.Message]) *actor.Mailbox[sansio.Message] {
	return nextOf(ch, prev, func(a *actor.Channel) *actor.Mailbox[sansio.Message] { return a.Returns })
}

// nextOf returns the mailbox of the channel's generation after the one of
// prev (nil: the current one), waiting during a recovery; nil once the
// channel has ended for good and prev was its last.
func nextOf[T any](ch *Channel, prev *actor.Mailbox[T], of func(*actor.Channel) *actor.Mailbox[T]) *actor.Mailbox[T] {
	mb, ok := nextGeneration(prev, ch.conn.closing, func() (*actor.Mailbox[T], <-chan struct{}, error) {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		return of(ch.gen.a), ch.changed, ch.err
	})
	if !ok {
		return nil
	}
	return mb
}

// Returns returns a channel that receives every message the broker returns
// on this channel after the first call (mandatory publishes no queue took).
// It is closed when the channel ends.
func (ch *Channel) Returns() <-chan Return {
	ch.returnsOnce.Do(func() {
		ch.returns = make(chan Return, 16)
		var first *actor.Mailbox[sansio.Message]
		ch.record(func(s *settings) {
			s.returns = true
			ch.gen.a.EnableReturns()
			first = ch.gen.a.Returns
		})
		// The forwarder is owned by the channel, as for Confirmations.
		go forwardGenerations(first, ch.nextReturns, ch.returns, func(m *sansio.Message) Return { return newReturn(m) },
			func(m sansio.Message) bool {
				select {
				case ch.returns <- newReturn(&m):
					return true
				default:
					return false
				}
			}, ch.conn.closing)
	})
	return ch.returns
}
