package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/amqproto/amqproto/internal/actor"
	"github.com/amqproto/amqproto/internal/sansio"
)

// DefaultConnectionTimeout bounds dialing and the handshake when neither the
// context nor the URI's connection_timeout does.
const DefaultConnectionTimeout = 30 * time.Second

// Config holds everything a connection can be configured with. Fields left
// at their zero value take the value from the URI, then the documented
// default.
type Config struct {
	// Auth lists mechanisms in order of preference; the first one the
	// broker offers is used. Default: from the URI's auth_mechanism, else
	// PLAIN with the URI's credentials.
	Auth []Auth
	// TLS configures TLS. Default for amqps URIs: verify the broker against
	// the system roots (or the URI's cacertfile), with the URI's certfile
	// and keyfile as client certificate. Setting it on an amqp URI enables
	// TLS too. A client certificate, from Certificates or the URI, is
	// presented even when the broker's request does not list its issuer
	// (where Go alone would send none), unless GetClientCertificate is set.
	TLS *tls.Config
	// Dial opens the transport. It may return any net.Conn: TCP, a Unix
	// socket, an in-memory pipe. TLS, when configured, is layered on top.
	// Default: net.Dialer.DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Heartbeat is the heartbeat interval to ask for. 0 takes the URI's
	// heartbeat, else the broker's proposal (RabbitMQ: 60 s); a negative
	// value disables heartbeats.
	Heartbeat time.Duration
	// FrameMax is the largest frame to accept: 0 takes the URI's
	// frame_max, else the broker's up to 1 MiB (a received frame is held
	// whole in memory, and a broker may offer up to 4 GiB; RabbitMQ's
	// default, 128 KiB, is under the cap). A FrameMax set here or in the
	// URI is asked for as it is, above 1 MiB too. A FrameMax under 8192 is
	// raised to 8192, which RabbitMQ 4.1 and later require, unless the
	// broker offers less.
	FrameMax uint32
	// ChannelMax is the most channels to open at once: 0 takes the URI's
	// channel_max, else the broker's (RabbitMQ: 2047).
	ChannelMax uint16
	// Vhost overrides the URI's virtual host when not empty.
	Vhost string
	// Properties are sent as client properties, merged over the defaults
	// (product, version, platform, capabilities).
	Properties Table
	// ConnectionName is shown by the broker's management tools.
	ConnectionName string
	// ConnectionTimeout bounds dialing, TLS and the AMQP handshake (and,
	// in a recovery attempt, the restore of channels and topology that
	// follows); 0 takes the URI's connection_timeout, else
	// DefaultConnectionTimeout.
	ConnectionTimeout time.Duration
	// Logger receives the connection's diagnostics; nil discards them.
	Logger *slog.Logger
	// MaxOutgoing bounds the bytes waiting to be written to the socket;
	// publishers wait while it is exceeded. 0: 4 MiB.
	MaxOutgoing int
	// ConsumerBuffer bounds the deliveries held for a consumer that the
	// broker does not limit (auto-ack, or an explicit Qos(0)). When a
	// receiver falls that far behind, its consumer is cancelled and ends
	// with ErrConsumerOverflow; what it already received is still handed
	// over. It is also the prefetch that Consume gives manual-ack consumers
	// on a channel where Qos was never called. 0: 16384.
	ConsumerBuffer int
	// MaxBodySize bounds the size of a received message; a larger one
	// closes its channel with 311 CONTENT_TOO_LARGE. 0: 512 MiB.
	MaxBodySize uint64

	// Recovery is the automatic recovery policy; the zero value recovers
	// forever. See Recovery and the package documentation.
	Recovery Recovery
	// Addresses are more broker URIs (the nodes of a cluster), tried with
	// the URL given to DialConfig, which may then be empty. Dial and
	// recovery try them in turn, shuffled unless KeepAddressOrder.
	Addresses []string
	// Resolver, when set, is asked for the broker URIs at every dial and
	// recovery attempt, in place of the URL and Addresses.
	Resolver func(ctx context.Context) ([]string, error)
	// KeepAddressOrder tries the addresses in the order given instead of
	// shuffled.
	KeepAddressOrder bool

	// Tracer, when set, is told of every publish, confirm, delivery,
	// acknowledgement, synchronous method and connection event; see
	// Tracer for the goroutine each of its methods runs on.
	Tracer Tracer

	observer actor.Observer // queues the loop's events for Tracer

	// secret is the password that Conn.UpdateSecret last set, which a
	// recovery logs in with; nil: the configured one.
	secret []byte
}

// Conn is a connection to a broker. Its methods are safe for concurrent use
// by any number of goroutines.
//
// A Conn outlives its sockets: unless Config.Recovery.Disable, a lost
// socket is replaced (see the package documentation), and the Conn, its
// Channels and their Consumers go on with the new one.
type Conn struct {
	cfg    Config
	eps    *endpoints
	log    *slog.Logger
	topo   topology
	events chan RecoveryEvent
	tr     *tracing // nil without Config.Tracer

	consuming consumesInFlight // the Consume calls in flight, for consumerGone

	ctx      context.Context // ends only when the connection ends for good
	cancel   context.CancelCauseFunc
	closeCtx context.Context // cancelled by Close
	closeNow context.CancelFunc
	closing  <-chan struct{} // closeCtx.Done()
	watchers sync.WaitGroup  // the goroutines that handle a socket's end

	mu       sync.Mutex
	a        *actor.Conn // the current socket's actor; ended during a recovery
	uri      URI
	gen      uint64
	changed  chan struct{} // closed and replaced when a or err changes
	err      error         // why the connection ended for good
	channels map[*Channel]struct{}
	// pastStats sums the counters of the sockets replaced by recoveries.
	pastStats actor.Stats
	secret    []byte // set by UpdateSecret: see Config.secret

	blocked  chan Blocking
	blockOne sync.Once

	eventsOnce sync.Once // makes events; see eventChan
}

// Blocking is the state a connection.blocked or connection.unblocked
// notification sets; see Conn.Blocked. The zero Blocking is unblocked.
type Blocking struct {
	// Blocked is true for connection.blocked: the broker stopped reading
	// from publishing connections (a memory or disk alarm). It is false
	// for connection.unblocked.
	Blocked bool
	// Reason is the broker's reason for blocking, such as "low on
	// memory"; empty for connection.unblocked.
	Reason string
}

// Dial connects to the broker at the AMQP URI url with the default Config.
func Dial(ctx context.Context, url string) (*Conn, error) {
	return DialConfig(ctx, url, Config{})
}

// DialConfig connects to the broker at url with cfg. The context bounds the
// dialing and the handshake, not the connection's life.
//
// A malformed url, or a certificate file it names that cannot be read, is
// a *URIError. Every later failure, until the connection is open, is a
// *DialError wrapping its cause: a network or TLS error, the context's
// error, or the broker's refusal (errors.Is(err, ErrAccessRefused) for
// wrong credentials, ErrNotAllowed for a vhost that is missing or not
// permitted).
//
// With Config.Addresses or Config.Resolver, it tries each broker once, in
// turn, and returns the errors of all when none accepts the connection; a
// refusal of the credentials or the vhost is returned at once.
func DialConfig(ctx context.Context, url string, cfg Config) (*Conn, error) {
	eps, err := newEndpoints(url, &cfg)
	if err != nil {
		return nil, err
	}
	tr := newTracing(cfg.Tracer)
	if tr != nil {
		cfg.observer = observer{tr}
	}
	a, uri, err := dialAny(ctx, eps, &cfg)
	if err != nil {
		return nil, err
	}
	c := &Conn{cfg: cfg, eps: eps, log: cfg.Logger, a: a, uri: uri, gen: 1, tr: tr,
		changed:  make(chan struct{}),
		channels: make(map[*Channel]struct{})}
	c.closeCtx, c.closeNow = context.WithCancel(context.Background())
	c.closing = c.closeCtx.Done()
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.log.Debug("amqp: connection opened", "addr", uri.Addr())
	tr.start(c)
	tr.conn(TraceConnEvent{Kind: ConnOpened, Addr: uri.Addr(), Generation: 1})
	c.watch(a)
	return c, nil
}

// dialOne connects to one broker and runs the handshake.
func dialOne(ctx context.Context, uri URI, cfg *Config) (*actor.Conn, error) {
	core, err := coreConfig(uri, cfg)
	if err != nil {
		return nil, err
	}
	timeout := cfg.ConnectionTimeout
	if timeout == 0 {
		timeout = uri.ConnectionTimeout
	}
	if timeout == 0 {
		timeout = DefaultConnectionTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("amqp: connecting to %s took longer than %v: %w", uri.Addr(), timeout, context.DeadlineExceeded))
	defer cancel()
	nc, err := dialTransport(ctx, uri, cfg)
	if err != nil {
		return nil, err
	}
	a, err := actor.Dial(ctx, nc, actor.Config{Core: core, Logger: cfg.Logger, MaxOutgoing: cfg.MaxOutgoing,
		ConsumerBuffer: cfg.ConsumerBuffer, Observer: cfg.observer})
	if err != nil {
		return nil, &DialError{Addr: uri.Addr(), Err: err}
	}
	return a, nil
}

func coreConfig(uri URI, cfg *Config) (sansio.Config, error) {
	auth, err := authFor(uri, cfg.Auth)
	if err != nil {
		return sansio.Config{}, err
	}
	if cfg.secret != nil {
		auth = withSecret(auth, string(cfg.secret))
	}
	core := sansio.Config{
		Auth:           auth,
		Vhost:          uri.Vhost,
		Properties:     cfg.Properties,
		ConnectionName: cfg.ConnectionName,
		ChannelMax:     firstNonZero(cfg.ChannelMax, uri.ChannelMax),
		FrameMax:       firstNonZero(cfg.FrameMax, uri.FrameMax),
		Heartbeat:      cfg.Heartbeat,
		MaxBodySize:    cfg.MaxBodySize,
	}
	if cfg.Vhost != "" {
		core.Vhost = cfg.Vhost
	}
	if core.Heartbeat == 0 && uri.HeartbeatSet {
		core.Heartbeat = uri.Heartbeat
		if uri.Heartbeat == 0 {
			core.Heartbeat = -1 // heartbeat=0 in a URI disables heartbeats
		}
	}
	return core, nil
}

func firstNonZero[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

func authFor(uri URI, auth []Auth) ([]sansio.Auth, error) {
	var out []sansio.Auth
	for _, a := range auth {
		out = append(out, a)
	}
	if len(out) > 0 {
		return out, nil
	}
	user, pass := uri.Username, uri.Password
	if user == "" && pass == "" {
		user, pass = "guest", "guest"
	}
	if len(uri.AuthMechanism) == 0 {
		return []sansio.Auth{PlainAuth{Username: user, Password: pass}}, nil
	}
	for _, m := range uri.AuthMechanism {
		switch m {
		case "PLAIN":
			out = append(out, PlainAuth{Username: user, Password: pass})
		case "AMQPLAIN":
			out = append(out, AMQPlainAuth{Username: user, Password: pass})
		case "EXTERNAL":
			out = append(out, ExternalAuth{})
		}
	}
	return out, nil
}

// withSecret replaces the password of the mechanisms that carry one.
func withSecret(auth []sansio.Auth, secret string) []sansio.Auth {
	out := make([]sansio.Auth, len(auth))
	for i, a := range auth {
		switch m := a.(type) {
		case PlainAuth:
			m.Password = secret
			a = m
		case *PlainAuth:
			a = PlainAuth{Username: m.Username, Password: secret}
		case AMQPlainAuth:
			m.Password = secret
			a = m
		case *AMQPlainAuth:
			a = AMQPlainAuth{Username: m.Username, Password: secret}
		}
		out[i] = a
	}
	return out
}

// DialError is a failure to open a connection: to reach the broker, to
// set up TLS, or to complete the AMQP handshake. Err is the cause, which
// errors.Is and errors.As see through Unwrap: a *net.OpError, a TLS
// error, the context's error, a *HandshakeError, or an *Error such as a
// 403 ACCESS_REFUSED for wrong credentials.
type DialError struct {
	Addr string // host:port
	Err  error  // the cause
}

// Error names the address and the cause.
func (e *DialError) Error() string {
	return "amqp: dial " + e.Addr + ": " + strings.TrimPrefix(e.Err.Error(), "amqp: ")
}

// Unwrap returns the cause, Err.
func (e *DialError) Unwrap() error { return e.Err }

func dialTransport(ctx context.Context, uri URI, cfg *Config) (net.Conn, error) {
	dial := cfg.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	// The certificate files are read first: a missing one is a mistake in
	// the configuration, to report as such, not after connecting.
	tlsCfg, err := tlsConfig(uri, cfg.TLS)
	if err != nil {
		return nil, err
	}
	nc, err := dial(ctx, "tcp", uri.Addr())
	if err == nil && nc == nil {
		err = errors.New("the dial function returned no connection and no error")
	}
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		if ctx.Err() != nil {
			// net reports a context deadline as "i/o timeout"; keep the
			// context's own error reachable for errors.Is.
			err = fmt.Errorf("%w: %w", err, context.Cause(ctx))
		}
		return nil, &DialError{Addr: uri.Addr(), Err: err}
	}
	if tlsCfg == nil {
		return nc, nil
	}
	tc := tls.Client(nc, tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, &DialError{Addr: uri.Addr(), Err: fmt.Errorf("TLS handshake: %w", err)}
	}
	return tc, nil
}

// LocalAddr returns the local network address of the connection's
// current transport (nil if a custom Config.Dial's connection reports none).
func (c *Conn) LocalAddr() net.Addr { return c.actor().NetConn().LocalAddr() }

// RemoteAddr returns the network address of the broker the connection
// is on now.
func (c *Conn) RemoteAddr() net.Addr { return c.actor().NetConn().RemoteAddr() }

// ConnectionState returns the TLS state of the connection (the negotiated
// version, cipher suite, the broker's certificates); ok is false when the
// connection does not use TLS.
func (c *Conn) ConnectionState() (state tls.ConnectionState, ok bool) {
	tc, ok := c.actor().NetConn().(*tls.Conn)
	if !ok {
		return tls.ConnectionState{}, false
	}
	return tc.ConnectionState(), true
}

// String names the connection by the URI of its broker, without the
// password (fmt would otherwise print the fields, the password among them).
func (c *Conn) String() string { return "amqp.Conn(" + c.URI().String() + ")" }

// GoString hides the password of the connection's URI from %#v.
func (c *Conn) GoString() string { return fmt.Sprintf("&amqp.Conn{URI:%#v}", c.URI()) }

// URI returns the URI of the broker the connection is on now; its String
// hides the password.
func (c *Conn) URI() URI {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uri
}

// current returns the actor of the current socket. During a recovery it
// waits for the new one, within ctx; once the connection has ended for good
// it returns why. A ctx already done returns its error at once.
func (c *Conn) current(ctx context.Context) (*actor.Conn, error) {
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	for {
		c.mu.Lock()
		a, err, changed := c.a, c.err, c.changed
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if a.Context().Err() == nil || !c.replacesLostSockets() {
			return a, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// Channel opens a new channel. During a recovery it waits for the new
// socket, within ctx.
func (c *Conn) Channel(ctx context.Context) (*Channel, error) {
	for {
		a, err := c.current(ctx)
		if err != nil {
			return nil, err
		}
		ach, err := a.OpenChannel(ctx)
		if err != nil {
			if c.retryAfterLoss(ctx, err) {
				continue // the socket died: the broker's channel died with it
			}
			return nil, err
		}
		if ch := c.register(a, ach); ch != nil {
			return ch, nil
		}
		ach.Close(ctx) // a recovery replaced the socket meanwhile
	}
}

// retryAfterLoss reports whether an operation that failed with err can be
// made again once a recovery replaced the socket: it failed because the
// socket was lost, and whatever it did died with that socket.
func (c *Conn) retryAfterLoss(ctx context.Context, err error) bool {
	return c.replacesLostSockets() && ctx.Err() == nil && connectionLevel(err)
}

// register makes a handle for ach, a channel of the socket a, unless a is
// no longer the current socket.
func (c *Conn) register(a *actor.Conn, ach *actor.Channel) *Channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.a != a || c.err != nil {
		return nil
	}
	ch := newChannel(c, ach)
	c.channels[ch] = struct{}{}
	return ch
}

func (c *Conn) forget(ch *Channel) {
	c.mu.Lock()
	delete(c.channels, ch)
	c.mu.Unlock()
}

// Close closes the connection: every channel ends, a recovery under way
// stops, the close handshake runs, and Close returns when the connection's
// goroutines have exited. If ctx ends first, the socket is closed at once,
// without waiting for the broker or flushing what is still unsent, and
// Close returns ctx's error. Unlike other calls, Close with a ctx already
// done still closes the connection, that way. A ctx without a deadline
// waits at most 10 s for the broker (one that stopped reading, under a
// resource alarm, never answers), then likewise. Calls made on the
// connection once Close was called fail with ErrConnectionClosed.
//
// It returns nil only when this Close ended the connection cleanly. When
// the connection had already ended (a loss or a missed heartbeat with
// recovery off, the broker's connection.close), or ended otherwise while
// Close waited, it returns that error; during a recovery, the loss that
// started it; after an earlier Close, ErrConnectionClosed.
func (c *Conn) Close(ctx context.Context) error {
	c.closeNow()
	c.mu.Lock()
	a, ended := c.a, c.err
	c.mu.Unlock()
	err := a.Close(ctx)
	c.watchers.Wait() // a recovery under way sees closing and stops
	c.end(ErrConnectionClosed)
	c.tr.wait()
	if ended != nil {
		return ended
	}
	return err
}

// end ends the connection for good with cause, and every channel with it.
func (c *Conn) end(cause error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = cause
	c.cancel(cause)
	close(c.changed)
	c.tr.stop(TraceConnEvent{Kind: ConnClosed, Err: cause})
	c.mu.Unlock()
	// No channel opens after c.err is set (see register).
	for _, ch := range c.openChannels() {
		ch.end(cause)
	}
}

// openChannels lists the channels open now.
func (c *Conn) openChannels() []*Channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	channels := make([]*Channel, 0, len(c.channels))
	for ch := range c.channels {
		channels = append(channels, ch)
	}
	return channels
}

// Context returns a context that is cancelled when the connection ends for
// good (not when a socket is lost and recovered); context.Cause gives the
// reason (an *Error for a broker's connection.close, a *RecoveryError when
// recovery gave up, ErrConnectionClosed after Close).
func (c *Conn) Context() context.Context { return c.ctx }

// Err returns why the connection ended for good, or nil while it is open or
// recovering. It agrees with what calls return: once a call has returned
// an end that no recovery follows, Err returns it (and IsClosed is true).
// Once Close was called, it is not nil: while Close waits for the broker,
// calls fail with ErrConnectionClosed, which Err returns.
func (c *Conn) Err() error {
	c.mu.Lock()
	a, err := c.a, c.err
	c.mu.Unlock()
	if err == nil && c.isClosing() && a.Context().Err() == nil {
		return ErrConnectionClosed // Close ends it when the broker answers
	}
	if err == nil && a.Context().Err() != nil {
		// Its end may not have been handled yet: handle an end that no
		// recovery follows now, so that Err agrees with the error a call
		// has just returned.
		if cause := context.Cause(a.Context()); !c.replacesLostSockets() || !recoverable(cause) {
			c.end(cause)
			return c.Err()
		}
	}
	return err
}

// IsClosed reports whether the connection has ended for good: Err is not
// nil. A Conn that is recovering is not closed.
func (c *Conn) IsClosed() bool { return c.Err() != nil }

// Generation counts the sockets the connection has had: 1 at first, plus
// one per recovery.
func (c *Conn) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// consumerBuffer is Config.ConsumerBuffer, or its default.
func (c *Conn) consumerBuffer() int {
	if c.cfg.ConsumerBuffer > 0 {
		return c.cfg.ConsumerBuffer
	}
	return actor.DefaultConsumerBuffer
}

func (c *Conn) actor() *actor.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.a
}

// ServerProperties returns the broker's properties (product, version,
// capabilities, cluster_name, ...) of the current socket, decoded afresh at
// each call: the Table is the caller's.
func (c *Conn) ServerProperties() Table { return c.actor().ServerProperties() }

// Tuning returns the negotiated channel_max, frame_max and heartbeat of the
// current socket.
func (c *Conn) Tuning() (channelMax uint16, frameMax uint32, heartbeat time.Duration) {
	t := c.actor().Tuning()
	return t.ChannelMax, t.FrameMax, t.Heartbeat
}

// UpdateSecret replaces the connection's credential (for example an expiring
// OAuth 2 token) with connection.update-secret. During a recovery it waits
// for the new socket, within ctx. Once the broker has accepted it, later
// recoveries log in with it, as the password of PlainAuth or AMQPlainAuth.
func (c *Conn) UpdateSecret(ctx context.Context, secret []byte, reason string) error {
	a, err := c.current(ctx)
	if err != nil {
		return err
	}
	if err := a.UpdateSecret(ctx, secret, reason); err != nil {
		return err
	}
	c.mu.Lock()
	c.secret = slices.Clone(secret)
	c.mu.Unlock()
	return nil
}

// Blocked returns a channel that tells whether the broker blocks this
// connection's publishers (connection.blocked, a memory or disk alarm) or
// no longer does (connection.unblocked). The first value a reader gets is
// the current state, blocked or not; each later one is a change from the
// last value it got. Notifications are coalesced to the latest state:
// one that comes while an earlier one is still unread replaces it, so a
// reader that falls behind gets the state of now, never a backlog. The
// channel is closed when the connection ends for good.
//
// While blocked, Publish waits (honouring its context). RabbitMQ sends
// connection.blocked once a blocked connection publishes, and then stops
// reading its socket: calls that need the broker's reply wait too
// (honouring their contexts), while confirms, deliveries and heartbeats
// keep arriving. A recovered socket starts unblocked, and the channel
// tells so when the lost one was blocked.
func (c *Conn) Blocked() <-chan Blocking {
	c.blockOne.Do(func() {
		c.blocked = make(chan Blocking)
		// The forwarder is owned by the Conn; it exits when the
		// connection has ended for good, or when Close is called.
		go c.forwardBlocking(c.blocked)
	})
	return c.blocked
}

// IsBlocked reports whether the broker blocks the connection's publishers
// now, with its reason (connection.blocked until connection.unblocked).
// During a recovery it reports the lost socket's last state until the new
// socket, which starts unblocked, replaces it.
func (c *Conn) IsBlocked() (blocked bool, reason string) {
	b, _, _ := c.actor().Blocking()
	return b.Blocked, b.Reason
}

// forwardBlocking offers out the latest blocking state of the current
// socket whenever it differs from the last value out took (at first,
// always), moving to each new socket, until the connection ends for good
// or is closed; then it closes out. Out is unbuffered, so what it offers
// is always the latest state.
func (c *Conn) forwardBlocking(out chan<- Blocking) {
	defer close(out)
	var sent Blocking
	first := true
	a := c.actor()
	for {
		b, changed, ended := a.Blocking()
		if ended {
			// The socket is gone, and its state with it: go on with the
			// next one, if a recovery brings one.
			if a = c.nextActor(a); a == nil {
				return
			}
			continue
		}
		state := Blocking(b)
		var offer chan<- Blocking
		if first || state != sent {
			offer = out
		}
		select {
		case <-changed:
			continue // a newer state came: offer that one
		default:
		}
		select {
		case offer <- state:
			sent, first = state, false
		case <-changed:
		case <-c.closing:
			return
		}
	}
}

// nextActor returns the socket that replaced prev, waiting during a
// recovery; nil once the connection has ended for good or is closed.
func (c *Conn) nextActor(prev *actor.Conn) *actor.Conn {
	a, ok := nextGeneration(prev, c.closing, func() (*actor.Conn, <-chan struct{}, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.a, c.changed, c.err
	})
	if !ok {
		return nil
	}
	return a
}

// forwardGenerations moves values from each generation's mailbox to out,
// from first (the mailbox of the generation current when the caller
// enabled it: a recovery may have replaced that generation before this
// goroutine runs, and its values must not be skipped), then each one next
// returns, until next has no more mailboxes or stop closes; then it
// closes out. offer is each mailbox's direct path (see
// actor.Mailbox.SetDirect): a send of the converted value to out that
// does not wait, so that while its receiver keeps up the loop hands a
// value over without waking the forwarding goroutine. It is given by the
// caller, whose types are known: a generic one would hand conv the
// address of its argument, which would then move to the heap on every
// call.
func forwardGenerations[T, U any](first *actor.Mailbox[T], next func(prev *actor.Mailbox[T]) *actor.Mailbox[T],
	out chan<- U, conv func(*T) U, offer func(T) bool, stop <-chan struct{}) {
	defer close(out)
	for mb := first; mb != nil; mb = next(mb) {
		// Only now, with the previous generation's values all handed over,
		// may the loop hand this one's straight to out.
		mb.SetDirect(offer)
		err := forward(mb, out, conv, stop, nil)
		mb.SetDirect(nil) // waits out a direct send in progress: none may follow close(out)
		if err == errForwardStopped {
			return
		}
	}
}
