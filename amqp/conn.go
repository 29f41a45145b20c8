package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	// ConnectionTimeout bounds dialing, TLS and the AMQP handshake; 0 takes
	// the URI's connection_timeout, else DefaultConnectionTimeout.
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
}

// Conn is a connection to a broker. Its methods are safe for concurrent use
// by any number of goroutines.
type Conn struct {
	a              *actor.Conn
	uri            URI
	consumerBuffer int      // Config.ConsumerBuffer, or its default
	nc             net.Conn // the transport, for its addresses and TLS state
	blocked        chan Blocking
	blockOne       sync.Once
}

// Blocking is a connection.blocked or connection.unblocked notification.
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
func DialConfig(ctx context.Context, url string, cfg Config) (*Conn, error) {
	uri, err := ParseURI(url)
	if err != nil {
		return nil, err
	}
	core, err := coreConfig(uri, &cfg)
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
	nc, err := dialTransport(ctx, uri, &cfg)
	if err != nil {
		return nil, err
	}
	a, err := actor.Dial(ctx, nc, actor.Config{Core: core, Logger: cfg.Logger, MaxOutgoing: cfg.MaxOutgoing,
		ConsumerBuffer: cfg.ConsumerBuffer})
	if err != nil {
		return nil, &DialError{Addr: uri.Addr(), Err: err}
	}
	buffer := cfg.ConsumerBuffer
	if buffer <= 0 {
		buffer = actor.DefaultConsumerBuffer
	}
	return &Conn{a: a, uri: uri, consumerBuffer: buffer, nc: nc}, nil
}

func coreConfig(uri URI, cfg *Config) (sansio.Config, error) {
	auth, err := authFor(uri, cfg.Auth)
	if err != nil {
		return sansio.Config{}, err
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
// transport (nil if a custom Config.Dial's connection reports none).
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the broker's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// ConnectionState returns the TLS state of the connection (the negotiated
// version, cipher suite, the broker's certificates); ok is false when the
// connection does not use TLS.
func (c *Conn) ConnectionState() (state tls.ConnectionState, ok bool) {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return tls.ConnectionState{}, false
	}
	return tc.ConnectionState(), true
}

// String names the connection by its URI, without the password (fmt
// would otherwise print the fields, the password among them).
func (c *Conn) String() string { return "amqp.Conn(" + c.uri.String() + ")" }

// GoString hides the password of the connection's URI from %#v.
func (c *Conn) GoString() string { return fmt.Sprintf("&amqp.Conn{URI:%#v}", c.uri) }

// URI returns the URI the connection was made with; its String hides the
// password.
func (c *Conn) URI() URI { return c.uri }

// Channel opens a new channel.
func (c *Conn) Channel(ctx context.Context) (*Channel, error) {
	ach, err := c.a.OpenChannel(ctx)
	if err != nil {
		return nil, err
	}
	return &Channel{a: ach, conn: c}, nil
}

// Close closes the connection: every channel ends, the close handshake runs,
// and Close returns when the connection's goroutines have exited. If ctx
// ends first, the socket is closed without waiting for the broker. It
// returns nil when the connection was closed cleanly, or the error that had
// already ended it.
func (c *Conn) Close(ctx context.Context) error {
	return c.a.Close(ctx)
}

// Context returns a context that is cancelled when the connection ends;
// context.Cause gives the reason (an *Error for a broker's
// connection.close, ErrConnectionClosed after Close).
func (c *Conn) Context() context.Context { return c.a.Context() }

// IsClosed reports whether the connection has ended.
func (c *Conn) IsClosed() bool { return c.a.Context().Err() != nil }

// ServerProperties returns the broker's properties (product, version,
// capabilities, cluster_name, ...).
func (c *Conn) ServerProperties() Table { return c.a.ServerProperties() }

// Tuning returns the negotiated channel_max, frame_max and heartbeat.
func (c *Conn) Tuning() (channelMax uint16, frameMax uint32, heartbeat time.Duration) {
	t := c.a.Tuning()
	return t.ChannelMax, t.FrameMax, t.Heartbeat
}

// UpdateSecret replaces the connection's credential (for example an expiring
// OAuth 2 token) with connection.update-secret.
func (c *Conn) UpdateSecret(ctx context.Context, secret []byte, reason string) error {
	return c.a.UpdateSecret(ctx, secret, reason)
}

// Blocked returns a channel that receives a Blocking when the broker blocks
// publishers on this connection (a resource alarm) and when it unblocks
// them. Every notification after the first call is delivered, in order;
// the channel is closed when the connection ends. While blocked, Publish
// waits (honouring its context). RabbitMQ sends connection.blocked once a
// blocked connection publishes, and then stops reading its socket: calls
// that need the broker's reply wait too (honouring their contexts), while
// confirms, deliveries and heartbeats keep arriving.
func (c *Conn) Blocked() <-chan Blocking {
	c.blockOne.Do(func() {
		c.blocked = make(chan Blocking, 4)
		// forward is owned by the Conn; it exits when the connection ends
		// and the notifications are delivered, or when Close is called.
		go forwardAndClose(c.a.Blockings, c.blocked, func(b *actor.Blocking) Blocking { return Blocking(*b) }, c.a.Closing())
	})
	return c.blocked
}
