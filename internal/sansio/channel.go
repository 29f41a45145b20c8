package sansio

import (
	"encoding/binary"
	"fmt"
	"slices"
)

type chanState uint8

const (
	chanOpening chanState = iota
	chanOpen
	chanClosing // we sent channel.close and wait for close-ok
)

// request is a synchronous method waiting for its reply. Only the first
// request of a channel is on the wire; the others wait their turn, as the
// spec allows one outstanding synchronous request per channel.
type request struct {
	token   uint64
	m       Method
	sent    bool
	noReply bool   // a no-wait method queued to keep its order
	frames  []byte // a publish queued behind a no-wait method: its frames, m nil
}

// contentKind says what the content being assembled on a channel belongs to.
type contentKind uint8

const (
	contentNone contentKind = iota
	contentDeliver
	contentReturn
	contentGetOk
)

// mandatoryPublish remembers a mandatory publish in confirm mode until its
// confirm, so that a basic.return can be paired with it.
type mandatoryPublish struct {
	seq        uint64
	exchange   string
	routingKey string
	size       int
	returned   bool
}

type channel struct {
	id       uint16
	state    chanState
	ended    bool // EventChannelClosed was emitted; waiting only for close-ok
	requests []request
	// closeToken is the token of the client's close request, which waits
	// for close-ok while closeWait is set.
	closeToken uint64
	closeWait  bool

	// Content being assembled: after a deliver, return or get-ok, a header
	// and then body frames until bodySize bytes arrived.
	content      contentKind
	haveHeader   bool
	msg          Message
	replyToken   uint64
	replyMethod  Method
	bodySize     uint64
	bodyReceived uint64

	// Publisher confirms: nextSeq numbers the next publish; unconfirmed
	// holds the outstanding ones with the driver's refs.
	confirm     bool
	nextSeq     uint64
	unconfirmed unconfirmed
	mandatory   []mandatoryPublish
}

func newChannel(id uint16) *channel { return &channel{id: id} }

// OpenChannel opens the lowest free channel and returns its number.
// EventReply with token and channel.open-ok follows, or EventChannelClosed.
func (c *Conn) OpenChannel(token uint64) (uint16, error) {
	if c.state != stateOpen {
		return 0, ErrConnectionClosed
	}
	id, ok := c.freeChannel()
	if !ok {
		return 0, fmt.Errorf("%w: all %d are open (channel_max)", ErrNoFreeChannel, c.tuning.ChannelMax)
	}
	ch := newChannel(id)
	if int(id) >= len(c.channels) {
		c.channels = append(c.channels, make([]*channel, int(id)+1-len(c.channels))...)
	}
	c.channels[id] = ch
	ch.requests = append(ch.requests, request{token: token, m: &ChannelOpen{}, sent: true})
	c.send(id, &ChannelOpen{})
	return id, nil
}

func (c *Conn) freeChannel() (uint16, bool) {
	for id := 1; id <= int(c.tuning.ChannelMax); id++ {
		if id >= len(c.channels) || c.channels[id] == nil {
			return uint16(id), true
		}
	}
	return 0, false
}

// usable returns channel id when requests may be sent on it.
func (c *Conn) usable(id uint16) (*channel, error) {
	if c.state != stateOpen {
		return nil, ErrConnectionClosed
	}
	ch := c.channel(id)
	if ch == nil || ch.ended || ch.state == chanClosing {
		return nil, ErrChannelClosed
	}
	return ch, nil
}

// Call sends m on the channel. When m expects a reply (it has responses and
// no no-wait flag set), it waits behind earlier requests of the channel and
// EventReply with token follows; otherwise it is sent at once and no event
// follows. Channel 0 takes connection methods (update-secret).
func (c *Conn) Call(id uint16, token uint64, m Method) error {
	ch, err := c.usable(id)
	if err != nil {
		return err
	}
	if ch.state == chanOpening && id != 0 {
		return fmt.Errorf("amqp: channel %d is still opening", id)
	}
	switch m.(type) {
	case *ChannelOpen, *ChannelClose, *ChannelCloseOk, *ConnectionClose, *ConnectionCloseOk, *BasicPublish:
		return fmt.Errorf("amqp: %s is sent by the Conn itself, not Call", m.ID())
	}
	if id == 0 && m.ID().Class() != ClassConnection || id != 0 && m.ID().Class() == ClassConnection {
		return fmt.Errorf("amqp: %s may not be sent on channel %d", m.ID(), id)
	}
	if !expectsReply(m) {
		if !m.Synchronous() || len(ch.requests) == 0 {
			return c.sendRequest(ch, m)
		}
		// The no-wait form of a synchronous method keeps its place behind
		// the requests still waiting, so that it cannot overtake the
		// declare it depends on. It is checked now, since no reply will
		// carry an error later.
		frame, err := AppendMethodFrame(nil, id, m)
		if err != nil {
			return err
		}
		if len(frame) > int(c.tuning.FrameMax) {
			return errorf(FrameError, "%s frame of %d bytes exceeds frame_max %d", m.ID(), len(frame), c.tuning.FrameMax)
		}
		ch.requests = append(ch.requests, request{token: token, m: m, noReply: true})
		return nil
	}
	ch.requests = append(ch.requests, request{token: token, m: m})
	if len(ch.requests) == 1 {
		return c.sendHead(ch)
	}
	return nil
}

// sendHead puts the first queued request on the wire. A request that cannot
// be encoded fails alone, with an EventReply carrying the error, and the next
// one is tried.
func (c *Conn) sendHead(ch *channel) error {
	for len(ch.requests) > 0 {
		head := &ch.requests[0]
		if head.m == nil { // a publish
			c.out = append(c.out, head.frames...)
			c.queued -= len(head.frames)
			ch.requests = ch.requests[1:]
			continue
		}
		if err := c.sendRequest(ch, head.m); err != nil {
			if !head.noReply {
				c.emit(Event{Kind: EventReply, Channel: ch.id, Token: head.token, Err: err})
			}
			ch.requests = ch.requests[1:]
			continue
		}
		if head.noReply {
			ch.requests = ch.requests[1:]
			continue
		}
		head.sent = true
		return nil
	}
	return nil
}

// sendRequest encodes m and applies what sending it changes in the channel.
func (c *Conn) sendRequest(ch *channel, m Method) error {
	start := len(c.out)
	out, err := AppendMethodFrame(c.out, ch.id, m)
	if err != nil {
		return err
	}
	if len(out)-start > int(c.tuning.FrameMax) {
		// The broker would close the connection with 501 FRAME_ERROR.
		c.out = out[:start]
		return errorf(FrameError, "%s frame of %d bytes exceeds frame_max %d", m.ID(), len(out)-start, c.tuning.FrameMax)
	}
	c.out = out
	c.framesOut++
	if _, ok := m.(*ConfirmSelect); ok && !ch.confirm {
		ch.confirm = true
		ch.nextSeq = 1
	}
	return nil
}

// CancelRequest withdraws a request that is still waiting its turn and
// reports whether it did; a request already sent is answered by the broker,
// and its EventReply still follows.
func (c *Conn) CancelRequest(id uint16, token uint64) bool {
	ch := c.channel(id)
	if ch == nil {
		return false
	}
	for i, r := range ch.requests {
		if r.token == token && !r.sent && !r.noReply {
			ch.requests = append(ch.requests[:i], ch.requests[i+1:]...)
			return true
		}
	}
	return false
}

// Awaiting returns the request of channel id that is on the wire, waiting
// for the broker's reply, if there is one: the request every later one
// on the channel waits behind.
func (c *Conn) Awaiting(id uint16) (MethodID, bool) {
	ch := c.channel(id)
	if ch == nil || len(ch.requests) == 0 || !ch.requests[0].sent {
		return 0, false
	}
	return ch.requests[0].m.ID(), true
}

// Publish queues basic.publish on channel id. frames are its method,
// content header and body frames, encoded with AppendPublish for this
// connection's frame_max (Tuning().FrameMax), so that a driver can encode
// outside the goroutine that owns the Conn; m is the method they were
// encoded from. In confirm mode Publish returns the publish's sequence
// number, whose EventConfirm follows, carrying ref (the driver's handle on
// the outcome, if it wants one; also on the EventReturn that the publish may
// get); otherwise 0, and ref is dropped.
//
// The Conn copies frames into its outgoing bytes, unless borrow is set and
// the publish can go out at once: then borrowed is true, and the driver
// writes frames itself, after the bytes TakeOutgoing returns now and before
// any queued later. A publish that must wait behind no-wait methods,
// themselves waiting for an earlier request's reply, is always copied: it
// must not overtake the exchange.declare it may need.
//
// A driver that writes the body from the caller's memory passes, with
// borrow set, the output of AppendPublishFraming: Publish reads only the
// method frame and the content header. It must first make sure, with
// PublishWaits, that the publish will not be copied.
func (c *Conn) Publish(id uint16, m *BasicPublish, frames []byte, ref any, borrow bool) (seq uint64, borrowed bool, err error) {
	if err := c.publishable(id); err != nil {
		return 0, false, err
	}
	bodySize, err := publishBodySize(frames, c.tuning.FrameMax)
	if err != nil {
		return 0, false, err
	}
	c.framesOut += publishFrames(bodySize, c.tuning.FrameMax)
	switch {
	case c.mustQueue(id):
		return c.queuePublish(id, m, bodySize, append([]byte(nil), frames...), ref), false, nil
	case borrow:
		return c.published(id, m, bodySize, ref), true, nil
	}
	c.out = append(c.out, frames...)
	return c.published(id, m, bodySize, ref), false, nil
}

// PublishWaits reports whether a publish on channel id now would wait
// behind no-wait methods (see Publish): Publish would copy its frames
// whatever borrow says, so they must hold the whole body.
func (c *Conn) PublishWaits(id uint16) bool { return c.mustQueue(id) }

// mustQueue reports whether a publish on channel id now would wait behind
// no-wait methods that are themselves waiting for an earlier request's
// reply.
func (c *Conn) mustQueue(id uint16) bool {
	ch := c.channel(id)
	if ch == nil {
		return false
	}
	for _, r := range ch.requests {
		if r.noReply {
			return true
		}
	}
	return false
}

// queuePublish numbers a publish and queues its frames behind the
// channel's waiting no-wait methods.
func (c *Conn) queuePublish(id uint16, m *BasicPublish, bodySize int, frames []byte, ref any) uint64 {
	ch := c.channels[id]
	if !ch.confirm && slices.ContainsFunc(ch.requests, isConfirmSelect) {
		// It goes out after that confirm.select: numbered from 1, as the
		// broker will number it. sendRequest keeps the count going.
		ch.confirm, ch.nextSeq = true, 1
	}
	ch.requests = append(ch.requests, request{noReply: true, frames: frames})
	c.queued += len(frames)
	return c.published(id, m, bodySize, ref)
}

func isConfirmSelect(r request) bool {
	_, ok := r.m.(*ConfirmSelect)
	return ok
}

// publishable reports why channel id cannot take a publish, if it cannot.
func (c *Conn) publishable(id uint16) error {
	if _, err := c.usable(id); err != nil {
		return err
	}
	if id == 0 {
		return fmt.Errorf("amqp: basic.publish may not be sent on channel 0")
	}
	return nil
}

// publishBodySize returns the body size announced by the content header
// frame, which follows the method frame at the start of frames. It rejects
// a header frame over frame_max (a large Headers table; 0: no limit): the
// broker would close the connection with 501 FRAME_ERROR. Body frames are
// split by frame_max and the method frame is bounded by its short strings.
func publishBodySize(frames []byte, frameMax uint32) (int, error) {
	_, n, err := ParseFrame(frames, 0)
	const header = 7 + 2 + 2 + 8 // frame header, class, weight, body size
	if err != nil || n == 0 || len(frames) < n+header || frames[n] != FrameHeader {
		return 0, errorf(InternalError, "publish frames are malformed")
	}
	if size := uint64(binary.BigEndian.Uint32(frames[n+3:])) + frameOverhead; frameMax != 0 && size > uint64(frameMax) {
		return 0, errorf(FrameError, "content header frame of %d bytes exceeds frame_max %d", size, frameMax)
	}
	return int(binary.BigEndian.Uint64(frames[n+11:])), nil
}

// publishFrames counts the frames of a publish: method, header and body
// frames.
func publishFrames(bodySize int, frameMax uint32) uint64 {
	per := max(int(frameMax)-frameOverhead, 1)
	return 2 + uint64((bodySize+per-1)/per)
}

// published numbers a publish that was just queued on channel id.
func (c *Conn) published(id uint16, m *BasicPublish, bodySize int, ref any) uint64 {
	ch := c.channels[id]
	if !ch.confirm {
		return 0
	}
	seq := ch.nextSeq
	ch.nextSeq++
	ch.unconfirmed.add(seq, ref)
	if m.Mandatory {
		ch.mandatory = append(ch.mandatory, mandatoryPublish{seq: seq, exchange: m.Exchange,
			routingKey: m.RoutingKey, size: bodySize})
	}
	return seq
}

// CloseChannel closes the channel. Requests still waiting fail at once;
// EventReply with token follows when the broker confirms, and
// EventChannelClosed with a nil error before it.
func (c *Conn) CloseChannel(id uint16, token uint64) error {
	ch, err := c.usable(id)
	if err != nil {
		return err
	}
	if id == 0 {
		return ErrChannelClosed
	}
	// What Call and Publish accepted without a reply to wait for goes out
	// before the close: its callers were told it would be sent. That stops
	// at the first request that waits for a reply and was never sent: what
	// follows it may depend on it (a bind on its declare), and it fails
	// below with the other requests.
	for i := range ch.requests {
		r := &ch.requests[i]
		if !r.noReply {
			if !r.sent {
				break
			}
			continue
		}
		if r.m == nil {
			c.out = append(c.out, r.frames...)
			c.queued -= len(r.frames)
			r.frames = nil
			continue
		}
		_ = c.sendRequest(ch, r.m) // encodable and within frame_max: checked by Call
	}
	c.send(id, &ChannelClose{ReplyCode: uint16(ReplySuccess)})
	ch.state = chanClosing
	ch.closeToken, ch.closeWait = token, true
	ch.finish(c, nil)
	return nil
}

// closeWithError closes the channel because the broker sent something the
// client cannot take, such as a body over MaxBodySize.
func (c *Conn) closeWithError(ch *channel, code ReplyCode, text string, id MethodID) {
	c.send(ch.id, &ChannelClose{ReplyCode: uint16(code), ReplyText: truncate(text, 255),
		ClassID: id.Class(), MethodID: id.Method()})
	ch.state = chanClosing
	ch.finish(c, &CloseError{Code: code, Reason: text, ClassID: id.Class(), MethodID: id.Method()})
}

// finish emits the end of the channel: failed requests, failed confirms,
// then EventChannelClosed with err (nil when the client closed it cleanly).
func (ch *channel) finish(c *Conn, err error) {
	if ch.ended {
		return
	}
	ch.ended = true
	failure := err
	if failure == nil {
		failure = ErrChannelClosed
	}
	if ch.content == contentGetOk {
		// The get-ok left the request queue when it arrived; its content
		// never completed.
		c.emit(Event{Kind: EventReply, Channel: ch.id, Token: ch.replyToken, Err: failure})
		ch.replyMethod = nil
	}
	ch.failRequests(c, failure)
	ch.unconfirmed.takeUpTo(0, func(seq uint64, ref any) {
		c.emit(Event{Kind: EventConfirm, Channel: ch.id, Seq: seq, Ref: ref, Confirm: ConfirmFailed, Err: failure})
	})
	ch.unconfirmed, ch.mandatory = unconfirmed{}, nil
	ch.content = contentNone
	c.emit(Event{Kind: EventChannelClosed, Channel: ch.id, Err: err})
}

func (ch *channel) failRequests(c *Conn, err error) {
	for _, r := range ch.requests {
		c.queued -= len(r.frames)
		if !r.noReply { // nobody waits for a no-wait method
			c.emit(Event{Kind: EventReply, Channel: ch.id, Token: r.token, Err: err})
		}
	}
	ch.requests = nil
}

// handleFrame processes a frame for this channel; m is the decoded method of
// a method frame. An error is a connection-level protocol violation.
func (ch *channel) handleFrame(c *Conn, f Frame, m Method) error {
	if ch.state == chanClosing {
		if f.Type != FrameMethod {
			return nil // content of a delivery that crossed our close
		}
		switch m := m.(type) {
		case *ChannelCloseOk:
			c.channels[ch.id] = nil
			if ch.closeWait {
				ch.closeWait = false
				c.emit(Event{Kind: EventReply, Channel: ch.id, Token: ch.closeToken, Method: &ChannelCloseOk{}})
			}
		case *ChannelClose:
			c.send(ch.id, &ChannelCloseOk{}) // both sides closed at once; wait for our close-ok
		default:
			_ = m // discarded while closing, as the spec requires
		}
		return nil
	}
	if ch.content != contentNone {
		return ch.contentFrame(c, f, m)
	}
	if f.Type != FrameMethod {
		return errorf(UnexpectedFrame, "content frame on channel %d without a method", ch.id)
	}
	switch m := m.(type) {
	case *ChannelClose:
		c.send(ch.id, &ChannelCloseOk{})
		c.channels[ch.id] = nil
		ch.finish(c, &CloseError{Code: ReplyCode(m.ReplyCode), Reason: m.ReplyText, ClassID: m.ClassID,
			MethodID: m.MethodID, Server: true})
	case *ChannelFlow:
		c.send(ch.id, &ChannelFlowOk{Active: m.Active})
		c.emit(Event{Kind: EventFlow, Channel: ch.id, Active: m.Active})
	case *BasicDeliver:
		ch.startContent(contentDeliver, Message{ConsumerTag: m.ConsumerTag, DeliveryTag: m.DeliveryTag,
			Redelivered: m.Redelivered, Exchange: m.Exchange, RoutingKey: m.RoutingKey})
	case *BasicReturn:
		ch.startContent(contentReturn, Message{ReplyCode: ReplyCode(m.ReplyCode), ReplyText: m.ReplyText,
			Exchange: m.Exchange, RoutingKey: m.RoutingKey})
	case *BasicAck:
		return ch.settle(c, m.DeliveryTag, m.Multiple, ConfirmAck)
	case *BasicNack:
		return ch.settle(c, m.DeliveryTag, m.Multiple, ConfirmNack)
	case *BasicCancel:
		if !m.NoWait {
			c.send(ch.id, &BasicCancelOk{ConsumerTag: m.ConsumerTag})
		}
		c.emit(Event{Kind: EventConsumerCancelled, Channel: ch.id, ConsumerTag: m.ConsumerTag})
	default:
		if !ch.handleReply(c, m) {
			return errorf(CommandInvalid, "unexpected %s on channel %d", m.ID(), ch.id)
		}
	}
	return nil
}

// handleReply matches m with the request on the wire and reports whether it
// answered it.
func (ch *channel) handleReply(c *Conn, m Method) bool {
	if len(ch.requests) == 0 || !ch.requests[0].sent || !IsResponse(ch.requests[0].m, m.ID()) {
		return false
	}
	head := ch.requests[0]
	ch.requests = ch.requests[1:]
	if _, ok := head.m.(*ChannelOpen); ok {
		ch.state = chanOpen
	}
	if get, ok := m.(*BasicGetOk); ok {
		ch.replyToken, ch.replyMethod = head.token, cloneMethod(get)
		ch.startContent(contentGetOk, Message{DeliveryTag: get.DeliveryTag, Redelivered: get.Redelivered,
			Exchange: get.Exchange, RoutingKey: get.RoutingKey, MessageCount: get.MessageCount})
	} else {
		c.emit(Event{Kind: EventReply, Channel: ch.id, Token: head.token, Method: cloneMethod(m)})
	}
	c.sendHead(ch) // a request that cannot be encoded fails with its own event
	return true
}

func (ch *channel) startContent(kind contentKind, msg Message) {
	ch.content = kind
	ch.msg = msg
	ch.haveHeader = false
	ch.bodySize, ch.bodyReceived = 0, 0
}

// contentFrame handles the header and body frames that must follow a
// content-carrying method before anything else on the channel.
func (ch *channel) contentFrame(c *Conn, f Frame, m Method) error {
	switch {
	case f.Type == FrameMethod:
		return errorf(UnexpectedFrame, "%s on channel %d while its content was expected", m.ID(), ch.id)
	case !ch.haveHeader && f.Type != FrameHeader:
		return errorf(UnexpectedFrame, "body frame on channel %d before the content header", ch.id)
	case ch.haveHeader && f.Type != FrameBody:
		return errorf(UnexpectedFrame, "second content header on channel %d", ch.id)
	}
	if f.Type == FrameHeader {
		return ch.contentHeader(c, f.Payload)
	}
	if uint64(len(f.Payload)) > ch.bodySize-ch.bodyReceived {
		return errorf(FrameError, "body frames on channel %d exceed the announced %d bytes", ch.id, ch.bodySize)
	}
	if ch.msg.Body == nil && uint64(len(f.Payload)) == ch.bodySize {
		// make+copy compiles to runtime.makeslicecopy, which does not
		// zero the memory it is about to overwrite.
		body := make([]byte, len(f.Payload))
		copy(body, f.Payload)
		ch.msg.Body = body
	} else {
		ch.msg.Body = append(ch.msg.Body, f.Payload...)
	}
	ch.bodyReceived += uint64(len(f.Payload))
	if ch.bodyReceived == ch.bodySize {
		ch.completeContent(c)
	}
	return nil
}

// maxPrealloc bounds the body buffer allocated from a peer's announced size;
// larger bodies grow as their frames arrive.
const maxPrealloc = 1 << 20

func (ch *channel) contentHeader(c *Conn, payload []byte) error {
	h := &c.header
	if err := c.dec.DecodeContentHeader(payload, h); err != nil {
		return err
	}
	if h.ClassID != ClassBasic {
		return errorf(FrameError, "content header for class %d, not basic", h.ClassID)
	}
	ch.haveHeader = true
	ch.bodySize = h.BodySize
	ch.msg.Properties = h.Properties
	if h.BodySize > c.cfg.MaxBodySize {
		// The body frames that follow are discarded while the channel closes.
		c.closeWithError(ch, ContentTooLarge, fmt.Sprintf("message body of %d bytes exceeds the client's limit of %d",
			h.BodySize, c.cfg.MaxBodySize), 0)
		return nil
	}
	if h.BodySize > uint64(c.tuning.FrameMax-frameOverhead) { // more than one body frame
		ch.msg.Body = make([]byte, 0, min(h.BodySize, maxPrealloc))
	}
	if h.BodySize == 0 {
		ch.completeContent(c)
	}
	return nil
}

func (ch *channel) completeContent(c *Conn) {
	kind := ch.content
	ch.content = contentNone
	msg := ch.msg
	ch.msg = Message{}
	if msg.Body == nil {
		msg.Body = []byte{}
	}
	switch kind {
	case contentDeliver:
		c.emit(Event{Kind: EventDelivery, Channel: ch.id, Message: msg})
	case contentReturn:
		seq := ch.pairReturn(&msg)
		ref, _ := ch.unconfirmed.get(seq)
		c.emit(Event{Kind: EventReturn, Channel: ch.id, Seq: seq, Ref: ref, Message: msg})
	case contentGetOk:
		c.emit(Event{Kind: EventReply, Channel: ch.id, Token: ch.replyToken, Method: ch.replyMethod, Message: msg})
		ch.replyMethod = nil
	}
}

// pairReturn finds the mandatory publish that msg returns: the oldest
// unconfirmed, not yet returned one with the same exchange, routing key and
// body size. RabbitMQ sends a return before the confirm of the same publish,
// and routes publishes in order, so the oldest match is the right one unless
// bindings changed between two otherwise identical publishes.
func (ch *channel) pairReturn(msg *Message) uint64 {
	for i := range ch.mandatory {
		p := &ch.mandatory[i]
		if !p.returned && p.exchange == msg.Exchange && p.routingKey == msg.RoutingKey && p.size == len(msg.Body) {
			p.returned = true
			return p.seq
		}
	}
	return 0
}

// settle handles basic.ack or basic.nack from the broker.
func (ch *channel) settle(c *Conn, tag uint64, multiple bool, outcome Confirm) error {
	if !ch.confirm {
		return errorf(CommandInvalid, "basic.ack or nack on channel %d, which is not in confirm mode", ch.id)
	}
	if multiple {
		ch.unconfirmed.takeUpTo(tag, func(seq uint64, ref any) {
			c.emit(Event{Kind: EventConfirm, Channel: ch.id, Seq: seq, Ref: ref, Confirm: outcome})
		})
	} else if ref, ok := ch.unconfirmed.take(tag); ok {
		c.emit(Event{Kind: EventConfirm, Channel: ch.id, Seq: tag, Ref: ref, Confirm: outcome})
	} // else an ack for something already settled: tolerated
	ch.compact()
	return nil
}

// compact forgets the mandatory publishes that were confirmed, so that
// memory follows the number of outstanding publishes, not their total.
func (ch *channel) compact() {
	if len(ch.mandatory) == 0 {
		return
	}
	keep := ch.mandatory[:0]
	for _, p := range ch.mandatory {
		if _, ok := ch.unconfirmed.get(p.seq); ok {
			keep = append(keep, p)
		}
	}
	clear(ch.mandatory[len(keep):])
	ch.mandatory = keep
}

// Unconfirmed returns how many publishes on the channel await a confirm.
func (c *Conn) Unconfirmed(id uint16) int {
	if ch := c.channel(id); ch != nil {
		return ch.unconfirmed.len()
	}
	return 0
}
