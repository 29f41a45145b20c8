package sansio_test

import (
	"fmt"
	"time"

	"github.com/amqproto/amqproto/internal/sansio"
)

// Example drives a Conn through a handshake, a channel, confirm mode, one
// publish and a close, purely with byte slices: the broker's frames are
// encoded with the codec, and what the client sends is decoded and printed.
func Example() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := sansio.NewConn(sansio.Config{
		Auth: []sansio.Auth{&sansio.PlainAuth{Username: "guest", Password: "guest"}},
	})

	var dec sansio.Decoder
	// flush prints what the client would write to the socket.
	flush := func() {
		out := c.TakeOutgoing(now, nil)
		for len(out) > 0 {
			if _, ok, _ := sansio.ParseProtocolHeader(out); ok {
				fmt.Println("client: AMQP 0-9-1 protocol header")
				out = out[len(sansio.ProtocolHeader):]
				continue
			}
			f, n, err := sansio.ParseFrame(out, 0)
			if err != nil || n == 0 {
				panic("bad output")
			}
			out = out[n:]
			switch f.Type {
			case sansio.FrameMethod:
				m, err := dec.DecodeMethod(f.Payload)
				if err != nil {
					panic(err)
				}
				switch m := m.(type) {
				case *sansio.ConnectionStartOk:
					fmt.Printf("client: %s mechanism=%s\n", m.ID(), m.Mechanism)
				case *sansio.ConnectionTuneOk:
					fmt.Printf("client: %s channel_max=%d frame_max=%d heartbeat=%d\n", m.ID(), m.ChannelMax, m.FrameMax, m.Heartbeat)
				case *sansio.ConnectionOpen:
					fmt.Printf("client: %s vhost=%q\n", m.ID(), m.VirtualHost)
				case *sansio.BasicPublish:
					fmt.Printf("client: %s channel=%d routing_key=%q\n", m.ID(), f.Channel, m.RoutingKey)
				default:
					fmt.Printf("client: %s channel=%d\n", m.ID(), f.Channel)
				}
			case sansio.FrameHeader:
				var h sansio.ContentHeader
				if err := dec.DecodeContentHeader(f.Payload, &h); err != nil {
					panic(err)
				}
				fmt.Printf("client: content header body_size=%d content_type=%s\n", h.BodySize, h.Properties.ContentType)
			case sansio.FrameBody:
				fmt.Printf("client: body %q\n", f.Payload)
			}
		}
	}
	// events prints what the Conn reports.
	events := func() {
		for {
			ev, ok := c.NextEvent()
			if !ok {
				return
			}
			switch ev.Kind {
			case sansio.EventReply:
				fmt.Printf("event: %s channel=%d token=%d %s\n", ev.Kind, ev.Channel, ev.Token, ev.Method.ID())
			case sansio.EventConfirm:
				fmt.Printf("event: %s channel=%d seq=%d %s\n", ev.Kind, ev.Channel, ev.Seq, ev.Confirm)
			default:
				fmt.Printf("event: %s err=%v\n", ev.Kind, ev.Err)
			}
		}
	}
	// broker feeds the Conn a method frame from the broker.
	broker := func(channel uint16, m sansio.Method) {
		frame, err := sansio.AppendMethodFrame(nil, channel, m)
		if err != nil {
			panic(err)
		}
		if n := c.Receive(now, frame); n != len(frame) {
			panic("frame not used")
		}
		events()
		flush()
	}

	c.Start(now)
	flush()
	broker(0, &sansio.ConnectionStart{VersionMajor: 0, VersionMinor: 9,
		Mechanisms: []byte("AMQPLAIN PLAIN"), Locales: []byte("en_US")})
	broker(0, &sansio.ConnectionTune{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60})
	broker(0, &sansio.ConnectionOpenOk{})

	ch, err := c.OpenChannel(1)
	if err != nil {
		panic(err)
	}
	flush()
	broker(ch, &sansio.ChannelOpenOk{})

	if err := c.Call(ch, 2, &sansio.ConfirmSelect{}); err != nil {
		panic(err)
	}
	flush()
	broker(ch, &sansio.ConfirmSelectOk{})

	pub := &sansio.BasicPublish{RoutingKey: "greetings"}
	frames, err := sansio.AppendPublish(nil, ch, pub, &sansio.Properties{ContentType: "text/plain"},
		[]byte("hello"), c.Tuning().FrameMax)
	if err != nil {
		panic(err)
	}
	seq, _, err := c.Publish(ch, pub, frames, nil, false)
	if err != nil {
		panic(err)
	}
	fmt.Println("published seq", seq)
	flush()
	broker(ch, &sansio.BasicAck{DeliveryTag: seq})

	c.Close(sansio.ReplySuccess, "bye")
	events()
	flush()
	broker(0, &sansio.ConnectionCloseOk{})

	// Output:
	// client: AMQP 0-9-1 protocol header
	// client: connection.start-ok mechanism=PLAIN
	// client: connection.tune-ok channel_max=2047 frame_max=131072 heartbeat=60
	// client: connection.open vhost="/"
	// event: connected err=<nil>
	// client: channel.open channel=1
	// event: reply channel=1 token=1 channel.open-ok
	// client: confirm.select channel=1
	// event: reply channel=1 token=2 confirm.select-ok
	// published seq 1
	// client: basic.publish channel=1 routing_key="greetings"
	// client: content header body_size=5 content_type=text/plain
	// client: body "hello"
	// event: confirm channel=1 seq=1 ack
	// event: channel-closed err=amqp: connection closed
	// client: connection.close channel=0
	// event: connection-closed err=<nil>
}
