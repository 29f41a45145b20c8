package sansio

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSmokeHandshakePublishConsume(t *testing.T) {
	c, p := openConn(t, 60)
	require.Equal(t, Tuning{ChannelMax: 2047, FrameMax: 4096, Heartbeat: 60e9}, c.Tuning())
	ch := openChannel(t, c, p)

	require.NoError(t, c.Call(ch, 1, &ConfirmSelect{}))
	evs := drive(t, c, t0, p.method(ch, &ConfirmSelectOk{}))
	require.Equal(t, EventReply, evs[0].Kind)
	c.TakeOutgoing(t0, nil)

	body := make([]byte, 10000)
	seq, err := publish(c, ch, &BasicPublish{RoutingKey: "q"}, &Properties{ContentType: "text/plain"}, body)
	require.NoError(t, err)
	require.Equal(t, uint64(1), seq)
	frames := p.frames(c.TakeOutgoing(t0, nil))
	require.Len(t, frames, 5) // method, header, 3 body frames of at most 4088 bytes

	evs = drive(t, c, t0, p.method(ch, &BasicAck{DeliveryTag: 1}))
	require.Equal(t, []Event{{Kind: EventConfirm, Channel: ch, Seq: 1, Confirm: ConfirmAck}}, evs)

	require.NoError(t, c.Call(ch, 2, &BasicConsume{Queue: "q"}))
	in := p.method(ch, &BasicConsumeOk{ConsumerTag: "ctag"})
	in = append(in, p.content(ch, &BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 1, RoutingKey: "q"},
		&Properties{ContentType: "text/plain"}, body, 4096)...)
	evs = drive(t, c, t0, in)
	require.Len(t, evs, 2)
	require.Equal(t, EventDelivery, evs[1].Kind)
	require.Equal(t, body, evs[1].Message.Body)
	require.Equal(t, "text/plain", evs[1].Message.Properties.ContentType)
}
