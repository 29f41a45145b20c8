package actor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amqproto/amqproto/internal/sansio"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxOutgoing    = 4 << 20
	DefaultConsumerBuffer = 16384
)

// Config configures a connection's actor.
type Config struct {
	Core   sansio.Config
	Logger *slog.Logger // nil: discard
	// MaxOutgoing bounds the bytes queued for the socket; publishers wait
	// while it is exceeded. 0 means DefaultMaxOutgoing.
	MaxOutgoing int
	// ConsumerBuffer bounds the deliveries held for a consumer whose
	// deliveries the broker does not bound (no prefetch, or no-ack). 0 means
	// DefaultConsumerBuffer.
	ConsumerBuffer int
	// Observer, when set, is told of what the loop settles and of
	// connection.blocked. Its methods run on the loop and must not block.
	Observer Observer
}

// Observer is told, on the loop, of events a tracer reports elsewhere.
type Observer interface {
	Settled(o *Outcome) // a publish's outcome is known
	Blocked(b Blocking) // connection.blocked or unblocked
}

// ErrConsumerOverflow ends a consumer whose receiver fell ConsumerBuffer
// deliveries behind while the broker had no prefetch limit to stop sending.
// The deliveries already received are still handed over.
var ErrConsumerOverflow = errors.New("amqp: consumer fell too far behind without a prefetch limit; set Qos or read faster")

// ErrConsumerCancelled ends a consumer that the client cancelled.
var ErrConsumerCancelled = errors.New("amqp: consumer cancelled")

// ErrCancelledByBroker ends a consumer that the broker cancelled, for
// example because its queue was deleted.
var ErrCancelledByBroker = errors.New("amqp: consumer cancelled by the broker")

var errCloseTimeout = errors.New("amqp: the broker did not confirm the close in time")

// Conn is one AMQP connection run by an actor. Its methods are safe for
// concurrent use.
type Conn struct {
	cfg Config
	log *slog.Logger
	nc  net.Conn

	reqs inbox[request]    // calls from any goroutine; always served, in order
	pubs inbox[publishReq] // publishes; taken while outgoing bytes are under the bound

	// Written by the loop before connected closes, read-only afterwards.
	tuning      sansio.Tuning
	serverProps []byte // as on the wire: see sansio.Conn.ServerPropertiesWire
	connected   chan struct{}

	ctx       context.Context // cancelled with the close cause when the connection ends
	cancel    context.CancelCauseFunc
	closed    atomic.Bool   // Close was called
	ended     atomic.Bool   // the core has ended; set by the loop
	closing   chan struct{} // closed when Close is called
	closeOnce sync.Once
	done      chan struct{} // closed when the loop and both I/O goroutines exited
	err       error         // why the connection ended; set before done closes

	// blocked is shut while the broker blocks publishers
	// (connection.blocked).
	blocked gate
	// blocking is the latest connection.blocked or unblocked
	// notification; see Blocking.
	blocking blockState

	stats counters

	nextToken atomic.Uint64
	// queued bounds the memory (buffer capacity) of publishes handed to
	// the loop but not yet in the core's outgoing buffer, and of those a
	// request made the loop take past MaxOutgoing (loop.owed); the loop
	// bounds the rest by not taking publishes while that buffer is full.
	queued         *budget
	sends          sendGate
	framePool      sync.Pool
	largeFramePool sync.Pool

	// lends is set when the socket takes vectored writes without blocking
	// (see vecWriter): Publish then lends bodies of lendMin bytes or more
	// instead of copying them. lendMu guards lent bodies and the writes
	// that refer to them (see loan). Set before the loop starts.
	lends  bool
	lendMu sync.Mutex
}

// Blocking is the state a connection.blocked (Blocked, with the broker's
// Reason) or connection.unblocked (the zero Blocking) notification sets.
type Blocking struct {
	Blocked bool
	Reason  string
}

// Result is what a call returns: the reply method, the message of a
// basic.get-ok, or the error that ended the request.
type Result struct {
	Method  sansio.Method
	Message sansio.Message
	Channel *Channel
	Err     error
}

// reqKind says what a request asks the loop to do.
type reqKind uint8

const (
	reqCall reqKind = iota // send m on ch; wait for its reply when it expects one
	reqOpenChannel
	reqCloseChannel
	reqConsume
	reqCancelConsumer
	reqCloseConn
	reqAbandon // the caller of the request with this token gave up
	reqUpdateSecret
)

// request is a call into the loop other than a publish, queued on c.reqs.
type request struct {
	kind  reqKind
	sent  bool          // queued by Channel.Send: counted by c.sends until taken
	ch    *Channel      // nil for the connection's requests
	m     sansio.Method // the method to send, if any
	cons  *Consumer     // reqConsume, reqCancelConsumer
	reply chan Result   // capacity 1; nil when nobody waits
	token uint64        // matches the broker's reply, and an abandon
}

// publishReq is a publish handed to the loop on c.pubs: frames encoded by
// the publisher from m.
type publishReq struct {
	ch     *Channel
	frames *[]byte
	out    *Outcome // nil: nobody waits for the outcome
	m      sansio.BasicPublish
	weight int64 // of c.queued, held until the loop takes the publish (see loop.owed)
	// loan, when set, is the body, which frames lack: they hold the
	// framing around it (see sansio.AppendPublishFraming).
	loan *loan
}

// Dial runs the handshake over nc and returns the open connection. nc is
// owned by the Conn from then on, and closed when it ends. ctx bounds the
// handshake only.
func Dial(ctx context.Context, nc net.Conn, cfg Config) (*Conn, error) {
	if cfg.MaxOutgoing <= 0 {
		cfg.MaxOutgoing = DefaultMaxOutgoing
	}
	if cfg.ConsumerBuffer <= 0 {
		cfg.ConsumerBuffer = DefaultConsumerBuffer
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Conn{
		cfg:       cfg,
		log:       log,
		nc:        nc,
		connected: make(chan struct{}),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
		queued:    newBudget(int64(cfg.MaxOutgoing)),
	}
	c.reqs.init()
	c.pubs.init()
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	l := newLoop(c)
	// The loop goroutine is owned by c; it exits when the connection ends
	// (close handshake done, broker gone, socket failed, or Abort), after
	// the reader and writer it started have exited, and then closes c.done.
	go l.run()
	select {
	case <-c.connected:
		return c, nil
	case <-c.done:
		select {
		case <-c.connected:
			// The handshake finished, then the connection ended in the
			// same read: hand it over, its Err says why it ended.
			return c, nil
		default:
			return nil, c.err
		}
	case <-ctx.Done():
		c.abort(context.Cause(ctx))
		<-c.done
		return nil, context.Cause(ctx)
	}
}

// NetConn returns the transport the connection runs on.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Closing is closed when Close is called.
func (c *Conn) Closing() <-chan struct{} { return c.closing }

// Tuning returns the negotiated limits.
func (c *Conn) Tuning() sansio.Tuning { return c.tuning }

// ServerProperties returns the broker's properties from connection.start,
// decoded afresh at each call.
func (c *Conn) ServerProperties() sansio.Table {
	t, _ := sansio.DecodeTable(c.serverProps) // encoded by the core
	return t
}

// Context is cancelled, with the reason as its cause, when the connection
// ends.
func (c *Conn) Context() context.Context { return c.ctx }

// Done is closed when the connection has ended and all its goroutines have
// exited.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is open or when it
// was closed cleanly by Close.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// abort ends the connection at once, without a close handshake.
func (c *Conn) abort(cause error) {
	c.cancel(cause)
}

// closeGaveUp is the end of a connection whose Close stopped waiting for
// the broker with err (its context's error, or errCloseTimeout). The
// channels' contexts take it as their cause at once, so it is what the
// calls waiting on them return: it matches ErrConnectionClosed, and not
// err, which a caller whose own context is alive would take for its own.
func closeGaveUp(err error) error {
	return fmt.Errorf("amqp: connection closed without the broker's close-ok: %v (%w)", err, sansio.ErrConnectionClosed)
}

// CloseTimeout bounds the wait for the broker's close-ok when Close is
// called with a context that has no deadline.
const CloseTimeout = 10 * time.Second

// Close closes the connection with the close handshake and returns when all
// its goroutines have exited. When ctx ends first, or the broker does not
// answer within CloseTimeout, the socket is closed at once, without
// flushing what is still unsent, so that Close returns within ctx.
//
// It returns nil only when this Close ended the connection cleanly (the
// broker's close-ok, or the socket dropped after our connection.close);
// otherwise the error that ended it: an end that came first, or ctx's
// error.
func (c *Conn) Close(ctx context.Context) error {
	// A connection that had already ended (the broker closed it, the
	// socket failed) before the first Close reports why.
	endedFirst := c.ended.Load() && !c.closed.Load()
	c.closed.Store(true)
	c.closeOnce.Do(func() { close(c.closing) })
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, CloseTimeout, errCloseTimeout)
		defer cancel()
	}
	c.reqs.push(request{kind: reqCloseConn}) // refused once the loop has ended
	var gaveUp error
	select {
	case <-c.done:
	case <-ctx.Done():
		gaveUp = context.Cause(ctx)
		c.abort(closeGaveUp(gaveUp))
		// The loop's shutdown would give unsent bytes a moment to drain;
		// there is no time left for that. Closing the transport ends the
		// writes in progress at once.
		closeTransport(c.nc)
		<-c.done
	}
	switch {
	case endedFirst:
		return c.err
	case gaveUp != nil:
		// Closed, but without the broker's close-ok: say so.
		return gaveUp
	case c.err == nil:
		return nil // ended by this Close: close-ok, or the broker dropped the socket after our close
	}
	// The connection ended otherwise while this Close ran (a loss, a
	// missed heartbeat, the broker's own close): not a clean close.
	return c.err
}

// closeTransport closes nc without waiting for anything: for TLS, the
// socket beneath first, since tls.Conn.Close may otherwise wait up to 5 s
// to send its close_notify alert on a socket that takes nothing.
func closeTransport(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
	}
	_ = nc.Close()
}

// call hands req to the loop and waits for its reply, honouring ctx. A ctx
// already done sends nothing. When ctx ends later, call tells the loop,
// which withdraws a request still queued or drops the broker's late reply,
// so the channel stays consistent; if the reply had already come, call
// returns it.
func (c *Conn) call(ctx context.Context, req request) Result {
	if ctx.Err() != nil {
		return Result{Err: context.Cause(ctx)}
	}
	req.reply = make(chan Result, 1)
	req.token = c.nextToken.Add(1)
	if !c.reqs.push(req) {
		return Result{Err: c.closedErr()}
	}
	select {
	case r := <-req.reply:
		return r
	case <-ctx.Done():
		r, answered := c.abandon(req)
		if answered {
			return r
		}
		if held, ok := r.Err.(*HeldError); ok {
			held.Err = context.Cause(ctx)
			return r
		}
		return Result{Err: context.Cause(ctx)}
	case <-c.done:
		select {
		case r := <-req.reply:
			return r
		default:
		}
		return Result{Err: c.closedErr()}
	}
}

// abandon tells the loop that nobody waits for req's reply any more. It
// waits for the loop only (which never blocks), not for the broker. The
// note follows req on the same channel, so the loop has handled req when
// it reads it. answered is true when the reply had been sent already, and
// r is that reply; otherwise r.Err may be a *HeldError, without its Err.
func (c *Conn) abandon(req request) (r Result, answered bool) {
	ack := make(chan Result, 1)
	c.reqs.push(request{kind: reqAbandon, ch: req.ch, token: req.token, reply: ack}) // refused once the loop has ended
	select {
	case r := <-ack:
		if r.Err == nil {
			return <-req.reply, true
		}
		return r, false
	case <-c.done:
		select {
		case r := <-req.reply:
			return r, true
		default:
			return Result{}, false
		}
	}
}

// closedErr is the error for an operation on an ended connection.
func (c *Conn) closedErr() error {
	<-c.done
	if c.err != nil {
		return c.err
	}
	return sansio.ErrConnectionClosed
}

// OpenChannel opens a channel.
func (c *Conn) OpenChannel(ctx context.Context) (*Channel, error) {
	r := c.call(ctx, request{kind: reqOpenChannel})
	if r.Err != nil {
		return nil, r.Err // one opened after the caller gave up is closed by the loop
	}
	return r.Channel, nil
}

// UpdateSecret sends connection.update-secret and waits for the broker.
func (c *Conn) UpdateSecret(ctx context.Context, secret []byte, reason string) error {
	return c.call(ctx, request{kind: reqUpdateSecret, m: &sansio.ConnectionUpdateSecret{NewSecret: secret, Reason: reason}}).Err
}

// Publish buffers come from two pools, so that a large message neither
// grows a small buffer step by step nor pins a large one where small ones
// would do.
const (
	smallFrames = 64 << 10
	largeFrames = 32 << 20 // larger buffers are not kept
)

// getFrames returns a buffer with room for need bytes.
func (c *Conn) getFrames(need int) *[]byte {
	pool := &c.framePool
	if need > smallFrames {
		pool = &c.largeFramePool
	}
	if p, ok := pool.Get().(*[]byte); ok {
		if cap(*p) >= need {
			return p
		}
		pool.Put(p)
	}
	b := make([]byte, 0, max(need, 4096))
	return &b
}

func (c *Conn) putFrames(p *[]byte) {
	switch n := cap(*p); {
	case n > largeFrames:
		return
	case n > smallFrames:
		*p = (*p)[:0]
		c.largeFramePool.Put(p)
	default:
		*p = (*p)[:0]
		c.framePool.Put(p)
	}
}

// publishSize estimates the encoded size of a publish: the body, the
// framing of every body frame, and room for the method and the header.
func publishSize(m *sansio.BasicPublish, props *sansio.Properties, body []byte, frameMax uint32) int {
	perFrame := int(frameMax) - 8
	frames := len(body)/max(perFrame, 1) + 1
	strs := len(props.ContentType) + len(props.ContentEncoding) + len(props.CorrelationID) + len(props.ReplyTo) +
		len(props.Expiration) + len(props.MessageID) + len(props.Type) + len(props.UserID) + len(props.AppID) + len(props.ClusterID)
	return len(body) + 8*frames + 128 + len(m.Exchange) + len(m.RoutingKey) + strs + 64*len(props.Headers)
}

// now is the loop's clock.
func now() time.Time { return time.Now() }
