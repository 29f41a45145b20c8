package fakebroker

import (
	"bytes"
	"testing"

	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The broker's handshake, a channel, and a publish whose body spans
// several frames, against a client played by hand (a second Broker reads
// the server's frames just as well).
func TestScriptPlaysTheBrokersPart(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 2*FrameMax+5)
	got := make(chan Content[*sansio.BasicPublish], 1)
	client, done := Pipe(t, func(b *Broker) {
		b.Handshake(7)
		require.Equal(t, uint16(3), b.OpenChannel())
		got <- ExpectContent[*sansio.BasicPublish](b)
		Expect[*sansio.ConnectionClose](b)
		b.Send(0, &sansio.ConnectionCloseOk{})
	})
	c := New(t, client)
	c.Write(sansio.ProtocolHeader[:])
	start := Expect[*sansio.ConnectionStart](c)
	require.Equal(t, "fake", start.ServerProperties["product"])
	c.Send(0, &sansio.ConnectionStartOk{Mechanism: "PLAIN", Response: []byte("\x00guest\x00guest"), Locale: "en_US"})
	tune := Expect[*sansio.ConnectionTune](c)
	require.Equal(t, uint16(7), tune.Heartbeat)
	require.Equal(t, uint32(FrameMax), tune.FrameMax)
	c.Send(0, &sansio.ConnectionTuneOk{ChannelMax: 16, FrameMax: FrameMax})
	c.Send(0, &sansio.ConnectionOpen{VirtualHost: "/"})
	Expect[*sansio.ConnectionOpenOk](c)
	c.Send(3, &sansio.ChannelOpen{})
	Expect[*sansio.ChannelOpenOk](c)
	c.SendContent(3, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{MessageID: "m"}, body)
	c.Write(sansio.AppendHeartbeat(nil)) // skipped by Expect
	c.Send(0, &sansio.ConnectionClose{})
	Expect[*sansio.ConnectionCloseOk](c)
	<-done
	_, err := c.Next()
	require.Error(t, err, "the script's end closes the broker's end")
	p := <-got
	require.Equal(t, uint16(3), p.Channel)
	require.Equal(t, "q", p.Method.RoutingKey)
	require.Equal(t, "m", p.Properties.MessageID)
	require.Equal(t, body, p.Body)
	client.Close()
}
