package sansio

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// segment is part of a transcript: what the client does, then the bytes the
// broker sends in answer. The broker cannot send a segment's bytes before the
// client acted (channel.open-ok comes after channel.open), so the bytes of
// two segments never arrive in one read; within a segment, and across the
// whole stream, reads may split anywhere.
type segment struct {
	act func(t *testing.T, c *Conn)
	in  []byte
}

// runTranscript plays segs against a fresh Conn. split cuts a segment, which
// starts at offset base in the broker's whole stream, into the reads that
// deliver it. The driver works like a real one: Receive gets what is left of
// the previous read with the new read appended, the bytes it used are
// scribbled over afterwards (events must not borrow them), and events are
// drained and output taken after every call. It returns the events and
// everything the client sent.
func runTranscript(t *testing.T, segs []segment, split func(seg []byte, base int) [][]byte) ([]Event, []byte) {
	t.Helper()
	c := NewConn(Config{Auth: []Auth{guest()}, ConnectionName: "split"})
	c.Start(t0)
	sent := c.TakeOutgoing(t0, nil)
	var evs []Event
	var pending []byte
	base := 0
	for _, seg := range segs {
		if seg.act != nil {
			seg.act(t, c)
			evs = append(evs, drain(c)...)
			sent = append(sent, c.TakeOutgoing(t0, nil)...)
		}
		for _, read := range split(seg.in, base) {
			buf := append(pending, read...)
			n := c.Receive(t0, buf)
			require.LessOrEqual(t, n, len(buf))
			for i := range buf[:n] {
				buf[i] = 0xAA
			}
			pending = append([]byte(nil), buf[n:]...)
			evs = append(evs, drain(c)...)
			sent = append(sent, c.TakeOutgoing(t0, nil)...)
		}
		base += len(seg.in)
	}
	require.Empty(t, pending, "bytes left over at the end of the transcript")
	return evs, sent
}

// longTranscript is a session: handshake, channel open, confirm mode,
// declare, consume, get, publishes, deliveries with multi-frame bodies,
// a return, confirms, flow control, a consumer cancel, heartbeats, and a
// forced close at the end.
func longTranscript(t *testing.T) []segment {
	p := &peer{t: t}
	const ch = 1
	big := bytes.Repeat([]byte("0123456789abcdef"), 513) // 8208 bytes: three frames at 4096
	mid := bytes.Repeat([]byte("z"), 4089)               // one byte past a frame

	start := rabbitStart()
	handshake := cat(
		p.method(0, start),
		p.method(0, &ConnectionTune{ChannelMax: 2047, FrameMax: 4096, Heartbeat: 60}),
		p.method(0, &ConnectionOpenOk{}),
	)
	opened := p.method(ch, &ChannelOpenOk{})
	session := cat(
		p.method(ch, &ConfirmSelectOk{}),
		AppendHeartbeat(nil),
		p.method(ch, &QueueDeclareOk{Queue: "q", MessageCount: 2}),
		p.method(ch, &BasicConsumeOk{ConsumerTag: "ctag"}),
		p.content(ch, &BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 1, Exchange: "", RoutingKey: "q"},
			&Properties{ContentType: "text/plain", Headers: Table{"n": int32(1)}}, big, 4096),
		p.content(ch, &BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 2, Redelivered: true, RoutingKey: "q"},
			nil, []byte{}, 4096),
		p.method(ch, &BasicAck{DeliveryTag: 2, Multiple: true}),
		p.content(ch, &BasicReturn{ReplyCode: uint16(noRoute), ReplyText: "NO_ROUTE", Exchange: "ex", RoutingKey: "nowhere"},
			&Properties{MessageID: "m3"}, []byte("unroutable"), 4096),
		p.method(ch, &BasicAck{DeliveryTag: 3}),
		p.content(ch, &BasicGetOk{DeliveryTag: 3, MessageCount: 0, RoutingKey: "q"}, nil, mid, 4096),
		p.method(0, &ConnectionBlocked{Reason: "low on memory"}),
		p.method(ch, &ChannelFlow{Active: false}),
		p.content(ch, &BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 4, RoutingKey: "q"}, nil, []byte("four"), 4096),
		p.method(ch, &ChannelFlow{Active: true}),
		p.method(0, &ConnectionUnblocked{}),
		p.method(ch, &BasicNack{DeliveryTag: 4}),
		AppendHeartbeat(nil),
		p.method(ch, &BasicCancel{ConsumerTag: "ctag"}),
		p.method(ch, &BasicAck{DeliveryTag: 5}),
		p.method(0, &ConnectionClose{ReplyCode: uint16(ConnectionForced), ReplyText: "shutdown"}),
	)
	return []segment{
		{in: handshake},
		{act: func(t *testing.T, c *Conn) {
			id, err := c.OpenChannel(1)
			require.NoError(t, err)
			require.Equal(t, uint16(ch), id)
		}, in: opened},
		{act: func(t *testing.T, c *Conn) {
			call(t, c, ch, 2, &ConfirmSelect{})
			call(t, c, ch, 3, &QueueDeclare{Queue: "q"})
			call(t, c, ch, 4, &BasicConsume{Queue: "q", ConsumerTag: "ctag"})
			call(t, c, ch, 5, &BasicGet{Queue: "q"})
			for _, m := range []*BasicPublish{
				{RoutingKey: "q"},
				{RoutingKey: "q", Mandatory: true},
				{Exchange: "ex", RoutingKey: "nowhere", Mandatory: true},
				{RoutingKey: "q"},
				{RoutingKey: "q"},
				{RoutingKey: "q"},
			} {
				body := []byte("unroutable")
				_, err := publish(c, ch, m, nil, body)
				require.NoError(t, err)
			}
		}, in: session},
	}
}

func whole(seg []byte, _ int) [][]byte { return [][]byte{seg} }

func TestLongTranscriptReference(t *testing.T) {
	evs, _ := runTranscript(t, longTranscript(t), whole)
	require.Equal(t, []EventKind{
		EventConnected,
		EventReply,                         // channel.open-ok
		EventReply, EventReply, EventReply, // select-ok, declare-ok, consume-ok
		EventDelivery, EventDelivery, // 1 and 2
		EventConfirm, EventConfirm, // ack 1..2
		EventReturn, EventConfirm, // 3
		EventReply, // get-ok
		EventBlocked, EventFlow, EventDelivery, EventFlow, EventUnblocked,
		EventConfirm,                         // nack 4
		EventConsumerCancelled, EventConfirm, // ack 5
		EventConfirm, EventChannelClosed, // 6 fails
		EventConnectionClosed,
	}, kinds(evs))
	require.Equal(t, uint64(3), evs[9].Seq)
	require.Equal(t, ConfirmNack, evs[17].Confirm)
	require.Len(t, evs[5].Message.Body, 8208)
	require.Len(t, evs[11].Message.Body, 4089)
	require.Equal(t, ConfirmFailed, evs[20].Confirm)
	require.ErrorIs(t, evs[22].Err, ErrConnectionForced)
}

// The same events and the same output come out wherever the broker's stream
// is split.
func TestSplitAtEveryOffset(t *testing.T) {
	segs := longTranscript(t)
	wantEvs, wantSent := runTranscript(t, segs, whole)
	if testing.Short() {
		t.Skip("feeds the transcript once per offset")
	}
	total := 0
	for _, s := range segs {
		total += len(s.in)
	}
	for k := 1; k < total; k++ {
		split := func(seg []byte, base int) [][]byte {
			if k <= base || k >= base+len(seg) {
				return [][]byte{seg}
			}
			return [][]byte{seg[:k-base], seg[k-base:]}
		}
		evs, sent := runTranscript(t, segs, split)
		if !assertSame(t, wantEvs, evs, wantSent, sent) {
			t.Fatalf("split at offset %d of %d differs", k, total)
		}
	}
}

func TestSplitOneByteAtATime(t *testing.T) {
	segs := longTranscript(t)
	wantEvs, wantSent := runTranscript(t, segs, whole)
	bytewise := func(seg []byte, _ int) [][]byte {
		reads := make([][]byte, len(seg))
		for i := range seg {
			reads[i] = seg[i : i+1]
		}
		return reads
	}
	evs, sent := runTranscript(t, segs, bytewise)
	require.True(t, assertSame(t, wantEvs, evs, wantSent, sent))
}

// sameOutput compares two outputs of the client. Its connection.start-ok,
// the first frame after the protocol header, is compared decoded: the client
// properties are a map, encoded in no particular order.
func sameOutput(t *testing.T, want, got []byte) bool {
	t.Helper()
	const header = len(ProtocolHeader)
	_, n1, err1 := ParseFrame(want[header:], 0)
	_, n2, err2 := ParseFrame(got[header:], 0)
	if err1 != nil || err2 != nil || n1 == 0 || n1 != n2 {
		return false
	}
	p := &peer{t: t}
	return assert.ObjectsAreEqual(p.frames(want[:header+n1]), p.frames(got[:header+n2])) &&
		bytes.Equal(want[header+n1:], got[header+n2:])
}

// assertSame compares without require so that the caller can say which
// split failed.
func assertSame(t *testing.T, wantEvs, evs []Event, wantSent, sent []byte) bool {
	t.Helper()
	ok := len(wantEvs) == len(evs)
	if ok {
		for i := range evs {
			if !assert.ObjectsAreEqual(wantEvs[i], evs[i]) {
				t.Errorf("event %d: want %+v, got %+v", i, wantEvs[i], evs[i])
				ok = false
				break
			}
		}
	} else {
		t.Errorf("want %v, got %v", kinds(wantEvs), kinds(evs))
	}
	if !sameOutput(t, wantSent, sent) {
		t.Errorf("the client's output differs")
		ok = false
	}
	return ok
}
