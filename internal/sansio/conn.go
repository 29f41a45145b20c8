package sansio

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Version is this client's version, announced in the client properties.
const Version = "0.1.0"

// Defaults applied when a Config field is zero.
const (
	DefaultFrameMax    = 131072    // RabbitMQ's default, used when neither side limits
	DefaultChannelMax  = 2047      // RabbitMQ's default, used when neither side limits
	DefaultMaxBodySize = 512 << 20 // RabbitMQ's ceiling for max_message_size
	defaultLocale      = "en_US"

	// FrameMaxCap bounds the frame_max this client accepts from the
	// server when Config.FrameMax is 0. A frame is buffered whole before it
	// is decoded, so the server's offer (up to 4 GiB) would otherwise set
	// how much memory one unfinished frame may hold. 1 MiB is above
	// RabbitMQ's default (128 KiB), which it so never lowers.
	FrameMaxCap = 1 << 20

	// RabbitMinFrameMax is the least frame_max RabbitMQ 4.1 and later
	// accept in tune-ok (the spec's minimum is 4096); every version takes it.
	RabbitMinFrameMax = 8192

	// preTuneFrameMax bounds frames before connection.tune. The spec asks
	// for FrameMinSize, but connection.start carries the server's properties,
	// whose size the server chooses; RabbitMQ's default frame_max is a safe
	// bound that still stops a peer from making us buffer without limit.
	preTuneFrameMax = DefaultFrameMax
)

// Config is what a Conn needs to open a connection. Zero values mean the
// defaults documented on each field.
type Config struct {
	// Auth lists the SASL mechanisms to try, in order of preference; the
	// first one the server offers is used. Required.
	Auth []Auth
	// Vhost is the virtual host; "" means "/".
	Vhost string
	// Properties are merged over the default client properties (product,
	// version, platform, information, capabilities).
	Properties Table
	// ConnectionName is announced as connection_name and shown by the
	// broker's management tools.
	ConnectionName string
	// Locale: "" means en_US.
	Locale string
	// ChannelMax is the highest channel number this client wants; 0 accepts
	// the server's limit.
	ChannelMax uint16
	// FrameMax is the largest frame this client wants; 0 accepts the
	// server's limit up to FrameMaxCap. Less than RabbitMinFrameMax is
	// raised to it, unless the server itself offers less.
	FrameMax uint32
	// Heartbeat is the interval this client wants: 0 accepts the server's
	// proposal, a negative value disables heartbeats, a positive value is
	// used (rounded up to whole seconds) unless the server proposes less.
	Heartbeat time.Duration
	// MaxBodySize bounds the body of a message this client accepts; 0 means
	// DefaultMaxBodySize. A larger message closes its channel with 311
	// CONTENT_TOO_LARGE.
	MaxBodySize uint64
}

// Tuning is what the handshake negotiated.
type Tuning struct {
	ChannelMax uint16
	FrameMax   uint32
	Heartbeat  time.Duration // 0: disabled
}

type connState uint8

const (
	stateNew connState = iota
	stateAwaitStart
	stateAwaitTune // after start-ok: secure or tune
	stateAwaitOpenOk
	stateOpen
	stateClosing // we sent connection.close
	stateClosed
)

// Conn is the client side of one AMQP 0-9-1 connection as a state machine.
// See the package documentation for how to drive it. It is not safe for
// concurrent use.
type Conn struct {
	cfg       Config
	state     connState
	dec       Decoder
	out       []byte
	queued    int // bytes of publishes held on channels (request.frames)
	events    []Event
	eventHead int
	endErr    error // why the connection ended; set with stateClosed
	auth      Auth
	tuning    Tuning
	// serverProps is connection.start's server-properties as on the wire:
	// decoded, they take a few KiB per connection for its whole life, and
	// they are rarely read.
	serverProps []byte
	frameLimit  uint32
	lastRecv    time.Time
	lastSend    time.Time
	held        int // bytes Receive left unused last time; the driver passes them again
	framesIn    uint64
	framesOut   uint64 // queued for the socket, publishes included

	// channels is indexed by channel number; channels[0] is the connection's
	// own queue of requests (update-secret).
	channels []*channel
	header   ContentHeader
}

// NewConn returns a Conn for cfg. Call Start to begin the handshake.
func NewConn(cfg Config) *Conn {
	if cfg.Vhost == "" {
		cfg.Vhost = "/"
	}
	if cfg.Locale == "" {
		cfg.Locale = defaultLocale
	}
	if cfg.MaxBodySize == 0 {
		cfg.MaxBodySize = DefaultMaxBodySize
	}
	c := &Conn{cfg: cfg, frameLimit: preTuneFrameMax}
	c.channels = []*channel{newChannel(0)}
	c.channels[0].state = chanOpen
	return c
}

// Start queues the protocol header and begins the handshake.
func (c *Conn) Start(now time.Time) {
	if c.state != stateNew {
		return
	}
	c.out = AppendProtocolHeader(c.out)
	c.state = stateAwaitStart
	c.lastRecv, c.lastSend = now, now
}

// Tuning returns the negotiated limits; valid after EventConnected.
func (c *Conn) Tuning() Tuning { return c.tuning }

// ServerProperties returns the server's properties from connection.start,
// decoded afresh at each call.
func (c *Conn) ServerProperties() Table {
	t, _ := DecodeTable(c.serverProps) // encoded by handleStart
	return t
}

// ServerPropertiesWire returns the server's properties as on the wire, with
// their length prefix (see DecodeTable). The caller must not modify them.
func (c *Conn) ServerPropertiesWire() []byte { return c.serverProps }

// IsOpen reports whether the handshake finished and the connection has not
// started closing.
func (c *Conn) IsOpen() bool { return c.state == stateOpen }

// Closed reports whether EventConnectionClosed has been emitted.
func (c *Conn) Closed() bool { return c.state == stateClosed }

// Err returns why the connection ended, as EventConnectionClosed will
// carry it: nil while it is open and after a clean close. A driver can
// read it as soon as Closed is true, before the events that fail the
// pending requests.
func (c *Conn) Err() error { return c.endErr }

// HasEvents reports whether NextEvent has an event to return.
func (c *Conn) HasEvents() bool { return c.eventHead < len(c.events) }

// NextEvent returns the oldest event not yet returned, or false when there is
// none.
func (c *Conn) NextEvent() (Event, bool) {
	if c.eventHead == len(c.events) {
		return Event{}, false
	}
	ev := c.events[c.eventHead]
	c.events[c.eventHead] = Event{} // drop references for the collector
	c.eventHead++
	if c.eventHead == len(c.events) {
		c.events = c.events[:0]
		c.eventHead = 0
	}
	return ev, true
}

func (c *Conn) emit(ev Event) { c.events = append(c.events, ev) }

// FrameCounts returns the frames received and the frames queued for the
// socket (publishes included) since NewConn.
func (c *Conn) FrameCounts() (in, out uint64) { return c.framesIn, c.framesOut }

// HasOutgoing reports whether bytes are waiting to be sent.
func (c *Conn) HasOutgoing() bool { return len(c.out) > 0 }

// OutgoingLen returns the number of bytes waiting to be sent, including
// publishes held on channels behind no-wait methods (see mustQueue).
func (c *Conn) OutgoingLen() int { return len(c.out) + c.queued }

// TakeOutgoing returns the bytes waiting to be sent and gives the Conn spare
// (truncated to length 0) to append later frames to, so that a driver can
// alternate two buffers without copying. The caller owns the returned slice.
func (c *Conn) TakeOutgoing(now time.Time, spare []byte) []byte {
	p := c.out
	c.out = spare[:0]
	if len(p) > 0 {
		c.lastSend = now
	}
	return p
}

// Receive processes the bytes in p and returns how many it used: every
// complete frame. The caller keeps the rest and passes it again, with more
// bytes appended, on the next call. Nothing in the resulting events refers to
// p. After EventConnectionClosed, Receive discards its input.
func (c *Conn) Receive(now time.Time, p []byte) int {
	n := 0
	// Any new byte shows the broker is alive, even in the middle of a
	// large frame on a slow link: p holds held bytes from last time plus
	// what arrived since.
	if len(p) > c.held {
		c.lastRecv = now
	}
	c.held = 0
	if c.state == stateAwaitStart && len(p) > 0 && p[0] == 'A' {
		version, ok, need := ParseProtocolHeader(p)
		if need {
			c.held = len(p)
			return 0
		}
		if ok {
			c.end(&VersionError{Server: version})
			return len(p)
		}
	}
	for c.state != stateClosed && c.state != stateNew {
		f, used, err := ParseFrame(p[n:], c.frameLimit)
		if err != nil {
			c.protocolError(err, 0)
			break
		}
		if used == 0 {
			c.held = len(p) - n
			return n
		}
		n += used
		c.handleFrame(f)
	}
	return len(p)
}

// ConnectionLost tells the Conn that the transport failed or reached EOF
// with err. It ends the connection unless it has ended already.
func (c *Conn) ConnectionLost(err error) {
	if err == nil {
		err = io.EOF
	}
	switch c.state {
	case stateClosed:
		return
	case stateAwaitTune:
		if c.serverCapability("authentication_failure_close") {
			// Such a broker refuses credentials with connection.close
			// 403 (this client asks for it): a bare close is the network's.
			c.end(fmt.Errorf("amqp: connection lost during authentication: %w (%w)", err, ErrConnectionClosed))
			return
		}
		c.end(&HandshakeError{Text: "the broker closed the connection during authentication, as brokers without authentication_failure_close do on wrong credentials; check the credentials and the mechanism (" + err.Error() + ")"})
	case stateClosing:
		c.end(nil) // we asked to close; the broker may drop the socket instead of close-ok
	default:
		c.end(fmt.Errorf("amqp: connection lost: %w (%w)", err, ErrConnectionClosed))
	}
}

// serverCapability reports whether the broker's connection.start announced
// the capability name.
func (c *Conn) serverCapability(name string) bool {
	caps, _ := c.ServerProperties()["capabilities"].(Table)
	on, _ := caps[name].(bool)
	return on
}

// Deadline returns when HandleTimeout must next be called, or the zero time
// when no timer is needed.
func (c *Conn) Deadline() time.Time {
	hb := c.tuning.Heartbeat
	if hb == 0 || (c.state != stateOpen && c.state != stateClosing) {
		return time.Time{}
	}
	send := c.lastSend.Add(hb / 2)
	dead := c.lastRecv.Add(2 * hb)
	if send.Before(dead) {
		return send
	}
	return dead
}

// HandleTimeout sends a heartbeat when nothing was sent for half an interval
// and ends the connection when nothing arrived for two.
func (c *Conn) HandleTimeout(now time.Time) {
	hb := c.tuning.Heartbeat
	if hb == 0 || (c.state != stateOpen && c.state != stateClosing) {
		return
	}
	if !now.Before(c.lastRecv.Add(2 * hb)) {
		c.end(ErrHeartbeatTimeout)
		return
	}
	if !now.Before(c.lastSend.Add(hb / 2)) {
		c.out = AppendHeartbeat(c.out)
		c.framesOut++
		c.lastSend = now
	}
}

// Close starts closing the connection with a reply code (normally
// ReplySuccess) and text. EventConnectionClosed follows when the broker
// confirms, or when the driver reports the transport's end with
// ConnectionLost.
func (c *Conn) Close(code ReplyCode, text string) {
	switch c.state {
	case stateClosed, stateClosing:
		return
	case stateNew, stateAwaitStart:
		c.end(nil)
		return
	}
	c.send(0, &ConnectionClose{ReplyCode: uint16(code), ReplyText: truncate(text, 255)})
	c.state = stateClosing
	c.endChannels(ErrConnectionClosed)
}

// protocolError handles a violation by the peer: close the connection with
// the violation's code and end it at once. The close frame is queued for the
// driver to flush; the broker's close-ok is not awaited.
func (c *Conn) protocolError(err error, id MethodID) {
	var pe *Error
	if !errors.As(err, &pe) {
		pe = &Error{Code: InternalError, Text: err.Error()}
	}
	if c.state == stateOpen || c.state == stateAwaitOpenOk || c.state == stateAwaitTune {
		c.send(0, &ConnectionClose{ReplyCode: uint16(pe.Code), ReplyText: truncate(pe.Text, 255),
			ClassID: id.Class(), MethodID: id.Method()})
	}
	c.end(&CloseError{Code: pe.Code, Reason: pe.Text, ClassID: id.Class(), MethodID: id.Method(), Connection: true})
}

// end moves to stateClosed: every channel ends with err, then
// EventConnectionClosed is emitted.
func (c *Conn) end(err error) {
	if c.state == stateClosed {
		return
	}
	c.state = stateClosed
	c.endErr = err
	chErr := err
	if chErr == nil {
		chErr = ErrConnectionClosed
	}
	c.endChannels(chErr)
	c.channels[0].failRequests(c, chErr)
	c.emit(Event{Kind: EventConnectionClosed, Err: err})
}

// endChannels ends every open channel with err, the connection's end, as
// a channel's end (see ChannelEnd). A channel the client was closing will
// never see its close-ok: its close request fails with err.
func (c *Conn) endChannels(err error) {
	err = ChannelEnd(err)
	for id := 1; id < len(c.channels); id++ {
		ch := c.channels[id]
		if ch == nil {
			continue
		}
		if !ch.ended {
			ch.finish(c, err)
		}
		if ch.closeWait {
			ch.closeWait = false
			c.emit(Event{Kind: EventReply, Channel: ch.id, Token: ch.closeToken, Err: err})
		}
		c.channels[id] = nil
	}
}

// send queues a method frame that the codec must be able to encode: the
// core builds these methods itself, so a failure is a bug.
func (c *Conn) send(channel uint16, m Method) {
	out, err := AppendMethodFrame(c.out, channel, m)
	if err != nil {
		panic("sansio: cannot encode " + m.ID().String() + ": " + err.Error())
	}
	c.out = out
	c.framesOut++
}

func (c *Conn) handleFrame(f Frame) {
	c.framesIn++
	if c.state == stateClosing {
		// After sending connection.close, every method but close and
		// close-ok is discarded (spec, connection.close), even one that
		// does not decode; the channels were ended already.
		if f.Type == FrameMethod && f.Channel == 0 {
			if m, err := c.dec.DecodeMethod(f.Payload); err == nil {
				c.handleConnectionMethod(m)
			}
		}
		return
	}
	if c.state < stateOpen && f.Type != FrameMethod && f.Type != FrameHeartbeat {
		c.protocolError(errorf(UnexpectedFrame, "frame type %d during the handshake", f.Type), 0)
		return
	}
	switch f.Type {
	case FrameHeartbeat:
		return
	case FrameMethod:
		m, err := c.dec.DecodeMethod(f.Payload)
		if err != nil {
			c.protocolError(err, 0)
			return
		}
		if !m.ClientReceives() {
			c.protocolError(errorf(CommandInvalid, "a server may not send %s", m.ID()), m.ID())
			return
		}
		if f.Channel == 0 {
			c.handleConnectionMethod(m)
			return
		}
		c.channelFrame(f, m)
	default:
		c.channelFrame(f, nil)
	}
}

func (c *Conn) channelFrame(f Frame, m Method) {
	if f.Channel == 0 {
		c.protocolError(errorf(CommandInvalid, "content frame on channel 0"), 0)
		return
	}
	ch := c.channel(f.Channel)
	if ch == nil {
		if c.state == stateClosing {
			return // channels were ended when we began to close
		}
		c.protocolError(errorf(ChannelError, "frame for channel %d, which is not open", f.Channel), idOf(m))
		return
	}
	if err := ch.handleFrame(c, f, m); err != nil {
		c.protocolError(err, idOf(m))
	}
}

func idOf(m Method) MethodID {
	if m == nil {
		return 0
	}
	return m.ID()
}

func (c *Conn) channel(id uint16) *channel {
	if int(id) < len(c.channels) {
		return c.channels[id]
	}
	return nil
}

func (c *Conn) handleConnectionMethod(m Method) {
	if c.state == stateClosing {
		switch m := m.(type) {
		case *ConnectionCloseOk:
			c.end(nil)
		case *ConnectionClose:
			c.send(0, &ConnectionCloseOk{})
			c.end(nil)
		default:
			_ = m // discarded while closing, as the spec requires
		}
		return
	}
	switch m := m.(type) {
	case *ConnectionStart:
		c.handleStart(m)
	case *ConnectionSecure:
		c.handleSecure(m)
	case *ConnectionTune:
		c.handleTune(m)
	case *ConnectionOpenOk:
		if c.state != stateAwaitOpenOk {
			c.unexpected(m)
			return
		}
		c.state = stateOpen
		c.emit(Event{Kind: EventConnected})
	case *ConnectionClose:
		c.send(0, &ConnectionCloseOk{})
		c.end(&CloseError{Code: ReplyCode(m.ReplyCode), Reason: m.ReplyText, ClassID: m.ClassID,
			MethodID: m.MethodID, Server: true, Connection: true})
	case *ConnectionBlocked:
		c.emit(Event{Kind: EventBlocked, Reason: m.Reason})
	case *ConnectionUnblocked:
		c.emit(Event{Kind: EventUnblocked})
	default:
		if c.state != stateOpen || !c.channels[0].handleReply(c, m) {
			c.unexpected(m)
		}
	}
}

func (c *Conn) unexpected(m Method) {
	c.protocolError(errorf(CommandInvalid, "unexpected %s", m.ID()), m.ID())
}

func (c *Conn) handleStart(m *ConnectionStart) {
	if c.state != stateAwaitStart {
		c.unexpected(m)
		return
	}
	if m.VersionMajor != 0 || m.VersionMinor != 9 {
		c.end(&HandshakeError{Text: fmt.Sprintf("server offers AMQP %d-%d, not 0-9", m.VersionMajor, m.VersionMinor)})
		return
	}
	// A table decoded from the wire encodes again; the clone drops the
	// room appending left.
	enc, _ := AppendTable(nil, m.ServerProperties)
	c.serverProps = slices.Clone(enc)
	c.auth = chooseAuth(c.cfg.Auth, string(m.Mechanisms))
	if c.auth == nil {
		var names []string
		for _, a := range c.cfg.Auth {
			names = append(names, a.Mechanism())
		}
		c.end(&HandshakeError{Text: fmt.Sprintf("no common SASL mechanism: client has %v, server offers %q", names, m.Mechanisms)})
		return
	}
	resp, err := c.auth.Response(nil)
	if err != nil {
		c.end(&HandshakeError{Text: "SASL " + c.auth.Mechanism() + ": " + err.Error()})
		return
	}
	// The Config supplies properties, mechanism and locale: a value the codec
	// cannot encode fails the handshake instead of panicking in send.
	out, err := AppendMethodFrame(c.out, 0, &ConnectionStartOk{
		ClientProperties: c.clientProperties(),
		Mechanism:        c.auth.Mechanism(),
		Response:         resp,
		Locale:           chooseLocale(c.cfg.Locale, string(m.Locales)),
	})
	if err != nil {
		c.end(&HandshakeError{Text: "cannot encode connection.start-ok: " + err.Error()})
		return
	}
	c.out = out
	c.framesOut++
	c.state = stateAwaitTune
}

func chooseLocale(want, offered string) string {
	locales := strings.Fields(offered)
	if len(locales) == 0 || slices.Contains(locales, want) {
		return want
	}
	return locales[0]
}

func (c *Conn) handleSecure(m *ConnectionSecure) {
	if c.state != stateAwaitTune {
		c.unexpected(m)
		return
	}
	resp, err := c.auth.Response(m.Challenge)
	if err != nil {
		c.end(&HandshakeError{Text: "SASL " + c.auth.Mechanism() + " challenge: " + err.Error()})
		return
	}
	c.send(0, &ConnectionSecureOk{Response: resp})
}

func (c *Conn) handleTune(m *ConnectionTune) {
	if c.state != stateAwaitTune {
		c.unexpected(m)
		return
	}
	wantFrameMax := c.cfg.FrameMax
	if wantFrameMax != 0 && wantFrameMax < RabbitMinFrameMax {
		wantFrameMax = RabbitMinFrameMax
	}
	t := Tuning{
		ChannelMax: uint16(negotiate(uint32(c.cfg.ChannelMax), uint32(m.ChannelMax), DefaultChannelMax)),
		FrameMax:   negotiate(wantFrameMax, m.FrameMax, DefaultFrameMax),
	}
	if c.cfg.FrameMax == 0 {
		t.FrameMax = min(t.FrameMax, FrameMaxCap)
	}
	if t.FrameMax < FrameMinSize {
		t.FrameMax = FrameMinSize
	}
	var hb uint16
	switch {
	case c.cfg.Heartbeat < 0:
		hb = 0 // the user's explicit choice
	case c.cfg.Heartbeat == 0:
		hb = m.Heartbeat
	default:
		want := uint16(min((c.cfg.Heartbeat+time.Second-1)/time.Second, 65535))
		hb = want
		if m.Heartbeat != 0 && m.Heartbeat < want {
			hb = m.Heartbeat
		}
	}
	t.Heartbeat = time.Duration(hb) * time.Second
	c.tuning = t
	c.frameLimit = t.FrameMax
	c.send(0, &ConnectionTuneOk{ChannelMax: t.ChannelMax, FrameMax: t.FrameMax, Heartbeat: hb})
	out, err := AppendMethodFrame(c.out, 0, &ConnectionOpen{VirtualHost: c.cfg.Vhost})
	if err != nil { // a vhost over 255 bytes
		c.end(&HandshakeError{Text: "cannot encode connection.open: " + err.Error()})
		return
	}
	c.out = out
	c.framesOut++
	c.state = stateAwaitOpenOk
}

// negotiate picks the lower of two limits where 0 means "no limit"; when
// neither side limits, it uses fallback so that memory stays bounded.
func negotiate(client, server, fallback uint32) uint32 {
	switch {
	case client == 0 && server == 0:
		return fallback
	case client == 0:
		return server
	case server == 0:
		return client
	}
	return min(client, server)
}

func (c *Conn) clientProperties() Table {
	props := Table{
		"product":     "amqproto",
		"version":     Version,
		"platform":    "Go " + runtime.Version(),
		"information": "https://github.com/amqproto/amqproto",
		"capabilities": Table{
			"publisher_confirms":           true,
			"exchange_exchange_bindings":   true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"connection.blocked":           true,
			"authentication_failure_close": true,
			"per_consumer_qos":             true,
			"direct_reply_to":              true,
		},
	}
	if c.cfg.ConnectionName != "" {
		props["connection_name"] = c.cfg.ConnectionName
	}
	for k, v := range c.cfg.Properties {
		props[k] = v
	}
	return props
}

// UpdateSecret sends connection.update-secret with a new credential (for
// example a refreshed OAuth 2 token). EventReply with token follows.
func (c *Conn) UpdateSecret(token uint64, secret []byte, reason string) error {
	return c.Call(0, token, &ConnectionUpdateSecret{NewSecret: secret, Reason: reason})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
