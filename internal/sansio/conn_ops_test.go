package sansio

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// rpc sends req with token, checks that exactly req went on the wire, answers
// with reply and returns the events.
func rpc(t *testing.T, c *Conn, p *peer, ch uint16, token uint64, req, reply Method) []Event {
	t.Helper()
	call(t, c, ch, token, req)
	s := p.sent(c)
	require.Len(t, s, 1)
	require.Equal(t, ch, s[0].channel)
	require.Equal(t, req, s[0].method)
	return drive(t, c, t0, p.method(ch, reply))
}

func TestSimpleRPCs(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	for i, tc := range []struct{ req, reply Method }{
		{&ExchangeDeclare{Exchange: "orders", Type: "topic", Durable: true, Arguments: Table{"alternate-exchange": "ae"}}, &ExchangeDeclareOk{}},
		{&ExchangeBind{Destination: "a", Source: "b", RoutingKey: "#"}, &ExchangeBindOk{}},
		{&QueueDeclare{Queue: "", Exclusive: true}, &QueueDeclareOk{Queue: "amq.gen-1", MessageCount: 3, ConsumerCount: 1}},
		{&QueueBind{Queue: "amq.gen-1", Exchange: "orders", RoutingKey: "eu.#"}, &QueueBindOk{}},
		{&QueueUnbind{Queue: "amq.gen-1", Exchange: "orders", RoutingKey: "eu.#"}, &QueueUnbindOk{}},
		{&QueuePurge{Queue: "q"}, &QueuePurgeOk{MessageCount: 7}},
		{&QueueDelete{Queue: "q"}, &QueueDeleteOk{MessageCount: 2}},
		{&BasicQos{PrefetchCount: 10}, &BasicQosOk{}},
		{&BasicRecover{Requeue: true}, &BasicRecoverOk{}},
		{&TxSelect{}, &TxSelectOk{}},
		{&TxCommit{}, &TxCommitOk{}},
		{&TxRollback{}, &TxRollbackOk{}},
		{&ExchangeDelete{Exchange: "orders"}, &ExchangeDeleteOk{}},
	} {
		token := uint64(i + 1)
		evs := rpc(t, c, p, ch, token, tc.req, tc.reply)
		require.Equal(t, []Event{{Kind: EventReply, Channel: ch, Token: token, Method: tc.reply}}, evs, "%s", tc.req.ID())
	}
}

// The Method of an EventReply is a copy: decoding later frames does not
// change it.
func TestReplyMethodIsOwned(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	evs := rpc(t, c, p, ch, 1, &QueueDeclare{}, &QueueDeclareOk{Queue: "first"})
	rpc(t, c, p, ch, 2, &QueueDeclare{}, &QueueDeclareOk{Queue: "second"})
	require.Equal(t, "first", evs[0].Method.(*QueueDeclareOk).Queue)
}

func TestAsyncMethodsProduceNoEvent(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	ms := []Method{
		&BasicAck{DeliveryTag: 1},
		&BasicAck{DeliveryTag: 5, Multiple: true},
		&BasicNack{DeliveryTag: 6, Requeue: true},
		&BasicReject{DeliveryTag: 7},
		&BasicRecoverAsync{Requeue: true},
		&QueueDeclare{Queue: "q", NoWait: true},
		&BasicConsume{Queue: "q", ConsumerTag: "c", NoWait: true},
		&BasicCancel{ConsumerTag: "c", NoWait: true},
	}
	for i, m := range ms {
		call(t, c, ch, uint64(i+1), m)
	}
	require.Empty(t, drain(c))
	require.Equal(t, ms, p.sentMethods(c))
}

func TestCallRejectsMisuse(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	for _, tc := range []struct {
		ch uint16
		m  Method
	}{
		{ch, &BasicPublish{}},
		{ch, &ChannelClose{}},
		{ch, &ChannelOpen{}},
		{0, &ConnectionClose{}},
		{0, &QueueDeclare{}},
		{ch, &ConnectionUpdateSecret{}},
	} {
		require.Error(t, c.Call(tc.ch, 1, tc.m), "%s on %d", tc.m.ID(), tc.ch)
	}
	require.ErrorIs(t, c.Call(9, 1, &QueueDeclare{}), ErrChannelClosed)
	_, err := publish(c, 0, &BasicPublish{}, nil, nil)
	require.Error(t, err)
	require.Empty(t, p.sent(c))
	require.Empty(t, drain(c))
}

// A method frame over frame_max would make the broker close the connection;
// the request fails alone and the next one goes out.
func TestRequestOverFrameMax(t *testing.T) {
	c, p := openConn(t, 0) // frame_max 4096
	ch := openChannel(t, c, p)
	big := Table{"x-big": strings.Repeat("a", 5000)}

	err := c.Call(ch, 1, &QueueDeclare{Queue: "q", NoWait: true, Arguments: big})
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, FrameError, e.Code)

	call(t, c, ch, 2, &QueueDeclare{Queue: "q", Arguments: big})
	evs := drain(c)
	require.Len(t, evs, 1)
	require.Equal(t, uint64(2), evs[0].Token)
	require.ErrorAs(t, evs[0].Err, &e)
	require.Empty(t, p.sent(c))

	evs = rpc(t, c, p, ch, 3, &QueueDeclare{Queue: "q"}, &QueueDeclareOk{Queue: "q"})
	require.Equal(t, uint64(3), evs[0].Token)

	_, err = publish(c, ch, &BasicPublish{}, &Properties{Headers: big}, []byte("x"))
	require.ErrorAs(t, err, &e)
	require.Equal(t, FrameError, e.Code)
	require.Empty(t, p.sent(c))
}

func TestUpdateSecret(t *testing.T) {
	c, p := openConn(t, 0)
	require.NoError(t, c.UpdateSecret(7, []byte("new-token"), "refresh"))
	s := p.sent(c)
	require.Len(t, s, 1)
	require.Equal(t, uint16(0), s[0].channel)
	require.Equal(t, &ConnectionUpdateSecret{NewSecret: []byte("new-token"), Reason: "refresh"}, s[0].method)
	evs := drive(t, c, t0, p.method(0, &ConnectionUpdateSecretOk{}))
	require.Equal(t, []Event{{Kind: EventReply, Token: 7, Method: &ConnectionUpdateSecretOk{}}}, evs)
}

func TestPublishSplitsBodyByFrameMax(t *testing.T) {
	c, p := openConn(t, 0) // frame_max 4096
	ch := openChannel(t, c, p)
	body := make([]byte, 10000)
	for i := range body {
		body[i] = byte(i)
	}
	props := &Properties{ContentType: "application/octet-stream", DeliveryMode: 2, Headers: Table{"k": "v"}}
	pub := &BasicPublish{Exchange: "ex", RoutingKey: "rk", Mandatory: true}
	seq, err := publish(c, ch, pub, props, body)
	require.NoError(t, err)
	require.Zero(t, seq, "no sequence numbers outside confirm mode")

	s := p.sent(c)
	require.Len(t, s, 5)
	require.Equal(t, pub, s[0].method)

	require.Equal(t, uint8(FrameHeader), s[1].frameType)
	var h ContentHeader
	require.NoError(t, p.dec.DecodeContentHeader(s[1].payload, &h))
	require.Equal(t, ContentHeader{ClassID: ClassBasic, BodySize: 10000, Properties: *props}, h)

	var got []byte
	var sizes []int
	for _, f := range s[2:] {
		require.Equal(t, uint8(FrameBody), f.frameType)
		require.Equal(t, ch, f.channel)
		sizes = append(sizes, len(f.payload))
		got = append(got, f.payload...)
	}
	require.Equal(t, []int{4088, 4088, 1824}, sizes) // 4096 minus 8 bytes of framing
	require.Equal(t, body, got)
	require.Empty(t, drain(c))
}

func TestPublishEmptyBody(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	_, err := publish(c, ch, &BasicPublish{RoutingKey: "q"}, nil, nil)
	require.NoError(t, err)
	s := p.sent(c)
	require.Len(t, s, 2, "method and header, no body frame")
	var h ContentHeader
	require.NoError(t, p.dec.DecodeContentHeader(s[1].payload, &h))
	require.Zero(t, h.BodySize)
}

func TestPublishExactlyFrameSizedBody(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	for _, n := range []int{4087, 4088, 4089, 8176, 8177} {
		_, err := publish(c, ch, &BasicPublish{}, nil, make([]byte, n))
		require.NoError(t, err)
		s := p.sent(c)
		require.Len(t, s, 2+(n+4087)/4088, "body of %d", n)
		// And back: the same content delivered arrives whole.
		evs := drive(t, c, t0, p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}, nil, make([]byte, n), 4096))
		require.Len(t, evs, 1)
		require.Len(t, evs[0].Message.Body, n)
	}
}

func TestConsumersAndDeliveries(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	for i, tag := range []string{"c1", "c2"} {
		evs := rpc(t, c, p, ch, uint64(i+1), &BasicConsume{Queue: "q" + tag, ConsumerTag: tag},
			&BasicConsumeOk{ConsumerTag: tag})
		require.Equal(t, &BasicConsumeOk{ConsumerTag: tag}, evs[0].Method)
	}
	type d struct {
		tag   string
		dtag  uint64
		body  []byte
		props Properties
	}
	in := []d{
		{"c1", 1, []byte("one"), Properties{ContentType: "text/plain"}},
		{"c2", 2, bytes.Repeat([]byte("two"), 3000), Properties{CorrelationID: "x", Headers: Table{"h": int32(1)}}},
		{"c1", 3, []byte{}, Properties{}},
		{"c2", 4, []byte("four"), Properties{Priority: 3}},
	}
	var wire []byte
	for _, x := range in {
		wire = append(wire, p.content(ch, &BasicDeliver{ConsumerTag: x.tag, DeliveryTag: x.dtag, Redelivered: x.dtag == 3,
			Exchange: "ex", RoutingKey: "rk." + x.tag}, &x.props, x.body, 4096)...)
	}
	evs := drive(t, c, t0, wire)
	require.Len(t, evs, len(in))
	for i, x := range in {
		require.Equal(t, Event{Kind: EventDelivery, Channel: ch, Message: Message{
			ConsumerTag: x.tag, DeliveryTag: x.dtag, Redelivered: x.dtag == 3, Exchange: "ex", RoutingKey: "rk." + x.tag,
			Properties: x.props, Body: x.body,
		}}, evs[i])
	}
	require.Empty(t, p.sent(c))
}

// Bodies are owned by the event: they do not alias the input buffer.
func TestDeliveryBodyDoesNotBorrowInput(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	in := p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}, nil, []byte("hello"), 4096)
	evs := drive(t, c, t0, in)
	clear(in)
	require.Equal(t, []byte("hello"), evs[0].Message.Body)
}

func TestBasicGetOkAndEmpty(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)

	call(t, c, ch, 1, &BasicGet{Queue: "q"})
	call(t, c, ch, 2, &BasicGet{Queue: "q"})
	require.Equal(t, []Method{&BasicGet{Queue: "q"}}, p.sentMethods(c))

	getOk := &BasicGetOk{DeliveryTag: 9, Redelivered: true, Exchange: "ex", RoutingKey: "rk", MessageCount: 41}
	body := bytes.Repeat([]byte("g"), 5000)
	wire := p.content(ch, getOk, &Properties{MessageID: "m1"}, body, 4096)
	// The content spans three frames; no event until the last one.
	f, n, err := ParseFrame(wire, 0)
	require.NoError(t, err)
	require.Equal(t, uint8(FrameMethod), f.Type)
	require.Empty(t, drive(t, c, t0, wire[:n]))
	// The next get went out as soon as get-ok arrived.
	require.Equal(t, []Method{&BasicGet{Queue: "q"}}, p.sentMethods(c))
	evs := drive(t, c, t0, wire[n:])
	require.Equal(t, []Event{{Kind: EventReply, Channel: ch, Token: 1, Method: getOk, Message: Message{
		DeliveryTag: 9, Redelivered: true, Exchange: "ex", RoutingKey: "rk", MessageCount: 41,
		Properties: Properties{MessageID: "m1"}, Body: body,
	}}}, evs)

	evs = drive(t, c, t0, p.method(ch, &BasicGetEmpty{}))
	require.Equal(t, []Event{{Kind: EventReply, Channel: ch, Token: 2, Method: &BasicGetEmpty{}}}, evs)
}

func selectConfirms(t *testing.T, c *Conn, p *peer, ch uint16) {
	t.Helper()
	evs := rpc(t, c, p, ch, 50, &ConfirmSelect{}, &ConfirmSelectOk{})
	require.Equal(t, EventReply, evs[0].Kind)
}

func publishN(t *testing.T, c *Conn, ch uint16, first, last uint64) {
	t.Helper()
	for want := first; want <= last; want++ {
		seq, err := publish(c, ch, &BasicPublish{RoutingKey: "q"}, nil, []byte("m"))
		require.NoError(t, err)
		require.Equal(t, want, seq)
	}
}

func TestConfirmsMultipleAcksAndNacks(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	selectConfirms(t, c, p, ch)
	publishN(t, c, ch, 1, 10)
	p.sent(c)
	require.Equal(t, 10, c.Unconfirmed(ch))

	evs := drive(t, c, t0, cat(
		p.method(ch, &BasicAck{DeliveryTag: 4, Multiple: true}),
		p.method(ch, &BasicNack{DeliveryTag: 5}),
		p.method(ch, &BasicAck{DeliveryTag: 10, Multiple: true}),
	))
	outcomes := map[uint64]Confirm{}
	for _, ev := range evs {
		require.Equal(t, EventConfirm, ev.Kind)
		require.NotContains(t, outcomes, ev.Seq, "seq %d confirmed twice", ev.Seq)
		outcomes[ev.Seq] = ev.Confirm
		require.NoError(t, ev.Err)
	}
	require.Equal(t, map[uint64]Confirm{1: ConfirmAck, 2: ConfirmAck, 3: ConfirmAck, 4: ConfirmAck, 5: ConfirmNack,
		6: ConfirmAck, 7: ConfirmAck, 8: ConfirmAck, 9: ConfirmAck, 10: ConfirmAck}, outcomes)
	require.Zero(t, c.Unconfirmed(ch))
	require.Empty(t, p.sent(c))
}

func TestConfirmsOutOfOrderAndDuplicates(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	selectConfirms(t, c, p, ch)
	publishN(t, c, ch, 1, 6)
	evs := drive(t, c, t0, cat(
		p.method(ch, &BasicAck{DeliveryTag: 3}),
		p.method(ch, &BasicAck{DeliveryTag: 3}), // duplicate: ignored
		p.method(ch, &BasicNack{DeliveryTag: 5}),
		p.method(ch, &BasicAck{DeliveryTag: 1}),
		p.method(ch, &BasicAck{DeliveryTag: 4, Multiple: true}), // 2 and 4
		p.method(ch, &BasicAck{DeliveryTag: 4, Multiple: true}), // nothing left up to 4
		p.method(ch, &BasicAck{DeliveryTag: 99}),                // never published: ignored
	))
	var got []uint64
	for _, ev := range evs {
		got = append(got, ev.Seq)
	}
	require.Equal(t, []uint64{3, 5, 1, 2, 4}, got)
	require.Equal(t, 1, c.Unconfirmed(ch))

	// multiple with tag 0 is "everything outstanding".
	evs = drive(t, c, t0, p.method(ch, &BasicAck{Multiple: true}))
	require.Equal(t, []Event{{Kind: EventConfirm, Channel: ch, Seq: 6, Confirm: ConfirmAck}}, evs)
}

func TestConfirmSelectNoWait(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &ConfirmSelect{Nowait: true})
	require.Equal(t, []Method{&ConfirmSelect{Nowait: true}}, p.sentMethods(c))
	publishN(t, c, ch, 1, 2)
	p.sent(c)
	// The channel is not left waiting for a select-ok that never comes.
	evs := rpc(t, c, p, ch, 2, &BasicQos{PrefetchCount: 1}, &BasicQosOk{})
	require.Equal(t, uint64(2), evs[0].Token)
}

func TestAckWithoutConfirmModeIsAViolation(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	evs := drive(t, c, t0, p.method(ch, &BasicAck{DeliveryTag: 1}))
	ce := requireConnectionClosedByClient(t, c, p, evs, CommandInvalid)
	require.Equal(t, BasicAckID.Method(), ce.MethodID)
}

func TestMandatoryReturnPairsWithSeq(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	selectConfirms(t, c, p, ch)
	pub := func(rk string, body string) uint64 {
		seq, err := publish(c, ch, &BasicPublish{Exchange: "ex", RoutingKey: rk, Mandatory: true}, nil, []byte(body))
		require.NoError(t, err)
		return seq
	}
	s1 := pub("routed", "aaa")   // 1: still unconfirmed when 2 is returned
	s2 := pub("unrouted", "bbb") // 2: returned
	s3 := pub("unrouted", "ccc") // 3: routed after all (bindings changed)
	require.Equal(t, []uint64{1, 2, 3}, []uint64{s1, s2, s3})

	ret := &BasicReturn{ReplyCode: uint16(noRoute), ReplyText: "NO_ROUTE", Exchange: "ex", RoutingKey: "unrouted"}
	evs := drive(t, c, t0, cat(
		p.content(ch, ret, &Properties{MessageID: "b"}, []byte("bbb"), 4096),
		p.method(ch, &BasicAck{DeliveryTag: 2}),
	))
	require.Equal(t, []Event{
		{Kind: EventReturn, Channel: ch, Seq: 2, Message: Message{ReplyCode: noRoute, ReplyText: "NO_ROUTE",
			Exchange: "ex", RoutingKey: "unrouted", Properties: Properties{MessageID: "b"}, Body: []byte("bbb")}},
		{Kind: EventConfirm, Channel: ch, Seq: 2, Confirm: ConfirmAck},
	}, evs)

	// A return for 3 pairs with 3, not the already returned 2.
	evs = drive(t, c, t0, cat(
		p.content(ch, ret, nil, []byte("ccc"), 4096),
		p.method(ch, &BasicAck{DeliveryTag: 3, Multiple: true}),
	))
	require.Equal(t, EventReturn, evs[0].Kind)
	require.Equal(t, uint64(3), evs[0].Seq)
	require.Equal(t, []uint64{1, 3}, []uint64{evs[1].Seq, evs[2].Seq})
}

func TestReturnWithoutConfirmMode(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	_, err := publish(c, ch, &BasicPublish{RoutingKey: "x", Mandatory: true}, nil, []byte("b"))
	require.NoError(t, err)
	evs := drive(t, c, t0, p.content(ch, &BasicReturn{ReplyCode: uint16(noRoute), RoutingKey: "x"}, nil, []byte("b"), 4096))
	require.Len(t, evs, 1)
	require.Equal(t, EventReturn, evs[0].Kind)
	require.Zero(t, evs[0].Seq)
}

func TestServerCancelsConsumer(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)

	evs := drive(t, c, t0, p.method(ch, &BasicCancel{ConsumerTag: "c1", NoWait: true}))
	require.Equal(t, []Event{{Kind: EventConsumerCancelled, Channel: ch, ConsumerTag: "c1"}}, evs)
	require.Empty(t, p.sent(c), "no reply to a no-wait cancel")

	evs = drive(t, c, t0, p.method(ch, &BasicCancel{ConsumerTag: "c2"}))
	require.Equal(t, []Event{{Kind: EventConsumerCancelled, Channel: ch, ConsumerTag: "c2"}}, evs)
	require.Equal(t, []Method{&BasicCancelOk{ConsumerTag: "c2"}}, p.sentMethods(c))
}

func TestClientCancelsConsumer(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	evs := rpc(t, c, p, ch, 3, &BasicCancel{ConsumerTag: "c1"}, &BasicCancelOk{ConsumerTag: "c1"})
	require.Equal(t, []Event{{Kind: EventReply, Channel: ch, Token: 3, Method: &BasicCancelOk{ConsumerTag: "c1"}}}, evs)
}

func TestChannelFlow(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	for _, active := range []bool{false, true} {
		evs := drive(t, c, t0, p.method(ch, &ChannelFlow{Active: active}))
		require.Equal(t, []Event{{Kind: EventFlow, Channel: ch, Active: active}}, evs)
		require.Equal(t, []Method{&ChannelFlowOk{Active: active}}, p.sentMethods(c))
	}
}

func TestConnectionBlocked(t *testing.T) {
	c, p := openConn(t, 0)
	evs := drive(t, c, t0, cat(
		p.method(0, &ConnectionBlocked{Reason: "low on memory"}),
		p.method(0, &ConnectionUnblocked{}),
	))
	require.Equal(t, []Event{{Kind: EventBlocked, Reason: "low on memory"}, {Kind: EventUnblocked}}, evs)
	require.Empty(t, p.sent(c))
}

// A message over MaxBodySize closes its channel with 311; its body frames
// are discarded until close-ok.
func TestContentTooLarge(t *testing.T) {
	c, p := openConnWith(t, Config{Auth: []Auth{guest()}, MaxBodySize: 100}, &ConnectionTune{FrameMax: 4096})
	ch := openChannel(t, c, p)
	selectConfirms(t, c, p, ch)
	publishN(t, c, ch, 1, 1)
	p.sent(c)

	evs := drive(t, c, t0, p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}, nil, make([]byte, 5000), 4096))
	require.Equal(t, []EventKind{EventConfirm, EventChannelClosed}, kinds(evs))
	require.Equal(t, ConfirmFailed, evs[0].Confirm)
	var ce *CloseError
	require.ErrorAs(t, evs[1].Err, &ce)
	require.Equal(t, ContentTooLarge, ce.Code)
	require.False(t, ce.Server)
	require.ErrorIs(t, evs[1].Err, ErrContentTooLarge)
	require.ErrorIs(t, evs[1].Err, ErrChannelClosed)
	ms := p.sentMethods(c)
	require.Len(t, ms, 1)
	require.Equal(t, uint16(ContentTooLarge), ms[0].(*ChannelClose).ReplyCode)

	// close-ok frees the channel and is nobody's reply.
	require.Empty(t, drive(t, c, t0, p.method(ch, &ChannelCloseOk{})))
	id, err := c.OpenChannel(1)
	require.NoError(t, err)
	require.Equal(t, ch, id)
}

// A get-ok whose content never completes still answers its request.
func TestGetOkInterruptedByContentTooLarge(t *testing.T) {
	c, p := openConnWith(t, Config{Auth: []Auth{guest()}, MaxBodySize: 100}, &ConnectionTune{FrameMax: 4096})
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &BasicGet{Queue: "q"})
	p.sent(c)
	evs := drive(t, c, t0, p.content(ch, &BasicGetOk{DeliveryTag: 1}, nil, make([]byte, 200), 4096))
	require.Equal(t, []EventKind{EventReply, EventChannelClosed}, kinds(evs))
	require.Equal(t, uint64(1), evs[0].Token)
	require.ErrorIs(t, evs[0].Err, ErrContentTooLarge)
}

func TestGetOkInterruptedByConnectionLoss(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &BasicGet{Queue: "q"})
	wire := p.content(ch, &BasicGetOk{DeliveryTag: 1}, nil, make([]byte, 200), 4096)
	_, n, err := ParseFrame(wire, 0)
	require.NoError(t, err)
	require.Empty(t, drive(t, c, t0, wire[:n]))
	c.ConnectionLost(errTestLost)
	evs := drain(c)
	require.Equal(t, []EventKind{EventReply, EventChannelClosed, EventConnectionClosed}, kinds(evs))
	require.Equal(t, uint64(1), evs[0].Token)
	require.ErrorIs(t, evs[0].Err, errTestLost)
}

// noRoute is 312 NO_ROUTE, which RabbitMQ puts in basic.return; the
// stripped 0-9-1 spec does not list it.
const noRoute ReplyCode = 312

// Frames of different channels may interleave, and heartbeats and
// connection methods may come between the frames of a content.
func TestInterleavedContentOnTwoChannels(t *testing.T) {
	c, p := openConn(t, 0)
	a := openChannel(t, c, p)
	b, err := c.OpenChannel(2)
	require.NoError(t, err)
	drive(t, c, t0, p.method(b, &ChannelOpenOk{}))
	p.sent(c)

	bodyA := bytes.Repeat([]byte("a"), 6000)
	bodyB := bytes.Repeat([]byte("b"), 5000)
	frames := func(ch uint16, tag uint64, body []byte) [][]byte {
		wire := p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: tag}, nil, body, 4096)
		var fs [][]byte
		for len(wire) > 0 {
			_, n, err := ParseFrame(wire, 0)
			require.NoError(t, err)
			fs = append(fs, wire[:n])
			wire = wire[n:]
		}
		return fs
	}
	fa, fb := frames(a, 1, bodyA), frames(b, 2, bodyB)
	require.Len(t, fa, 4)
	require.Len(t, fb, 4)
	evs := drive(t, c, t0, cat(
		fa[0], fb[0], fa[1], heartbeatFrame, fb[1], fb[2],
		p.method(0, &ConnectionBlocked{Reason: "disk"}),
		fa[2], fb[3], fa[3],
	))
	require.Equal(t, []EventKind{EventBlocked, EventDelivery, EventDelivery}, kinds(evs))
	require.Equal(t, b, evs[1].Channel)
	require.Equal(t, bodyB, evs[1].Message.Body)
	require.Equal(t, a, evs[2].Channel)
	require.Equal(t, bodyA, evs[2].Message.Body)
}

// A body larger than the preallocation bound grows as its frames arrive.
func TestLargeBody(t *testing.T) {
	c, p := openConnWith(t, Config{Auth: []Auth{guest()}}, &ConnectionTune{FrameMax: 131072})
	ch := openChannel(t, c, p)
	body := make([]byte, 3<<20+17)
	for i := range body {
		body[i] = byte(i * 7)
	}
	evs := drive(t, c, t0, p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}, nil, body, 131072))
	require.Len(t, evs, 1)
	require.True(t, bytes.Equal(body, evs[0].Message.Body))
}

// The ref given to Publish comes back with the publish's confirm and
// return, also when the channel's end fails it; one table holds both.
func TestPublishRefsComeBackWithTheirOutcome(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	selectConfirms(t, c, p, ch)
	refs := []*int{new(int), new(int), new(int), new(int)}
	for i, ref := range refs {
		m := &BasicPublish{Exchange: "ex", RoutingKey: "rk", Mandatory: i == 1}
		frames, err := AppendPublish(nil, ch, m, nil, []byte("b"), c.Tuning().FrameMax)
		require.NoError(t, err)
		seq, _, err := c.Publish(ch, m, frames, ref, false)
		require.NoError(t, err)
		require.Equal(t, uint64(i+1), seq)
	}
	ret := &BasicReturn{ReplyCode: uint16(noRoute), ReplyText: "NO_ROUTE", Exchange: "ex", RoutingKey: "rk"}
	evs := drive(t, c, t0, cat(
		p.content(ch, ret, nil, []byte("b"), 4096),
		p.method(ch, &BasicAck{DeliveryTag: 2, Multiple: true}),
		p.method(ch, &BasicNack{DeliveryTag: 4}),
	))
	require.Len(t, evs, 4)
	require.Equal(t, EventReturn, evs[0].Kind)
	require.Same(t, refs[1], evs[0].Ref)
	for i, want := range []int{0, 1, 3} {
		require.Equal(t, EventConfirm, evs[i+1].Kind)
		require.Same(t, refs[want], evs[i+1].Ref)
	}
	require.Equal(t, 1, c.Unconfirmed(ch))

	evs = drive(t, c, t0, p.method(ch, &ChannelClose{ReplyCode: 406, ReplyText: "PRECONDITION_FAILED"}))
	require.Equal(t, EventConfirm, evs[0].Kind)
	require.Equal(t, ConfirmFailed, evs[0].Confirm)
	require.Same(t, refs[2], evs[0].Ref)
}
