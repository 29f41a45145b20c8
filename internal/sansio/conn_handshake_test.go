package sansio

import (
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startOkFor starts a Conn for cfg, sends connection.start offering
// mechanisms and returns the connection.start-ok the client sent.
func startOkFor(t *testing.T, cfg Config, mechanisms string) (*Conn, *peer, *ConnectionStartOk) {
	t.Helper()
	c, p := startConn(t, cfg)
	start := rabbitStart()
	start.Mechanisms = []byte(mechanisms)
	require.Empty(t, drive(t, c, t0, p.method(0, start)))
	ms := p.sentMethods(c)
	require.Len(t, ms, 1)
	require.IsType(t, &ConnectionStartOk{}, ms[0])
	return c, p, ms[0].(*ConnectionStartOk)
}

// finishHandshake sends tune and open-ok and checks tune-ok, open and
// EventConnected.
func finishHandshake(t *testing.T, c *Conn, p *peer, vhost string) {
	t.Helper()
	require.Empty(t, drive(t, c, t0, p.method(0, &ConnectionTune{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60})))
	require.Equal(t, []Method{
		&ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60},
		&ConnectionOpen{VirtualHost: vhost},
	}, p.sentMethods(c))
	require.False(t, c.IsOpen())
	evs := drive(t, c, t0, p.method(0, &ConnectionOpenOk{}))
	require.Equal(t, []Event{{Kind: EventConnected}}, evs)
	require.True(t, c.IsOpen())
	require.Empty(t, p.sent(c))
}

func TestHandshakePlain(t *testing.T) {
	c, p, ok := startOkFor(t, Config{Auth: []Auth{guest()}, Vhost: "/prod", ConnectionName: "orders-1"},
		"AMQPLAIN EXTERNAL PLAIN")
	require.Equal(t, "PLAIN", ok.Mechanism)
	require.Equal(t, []byte("\x00guest\x00guest"), ok.Response)
	require.Equal(t, "en_US", ok.Locale)

	props := ok.ClientProperties
	require.Equal(t, "amqproto", props["product"])
	require.Equal(t, Version, props["version"])
	require.Equal(t, "orders-1", props["connection_name"])
	require.IsType(t, "", props["platform"])
	require.Equal(t, Table{
		"publisher_confirms":           true,
		"exchange_exchange_bindings":   true,
		"basic.nack":                   true,
		"consumer_cancel_notify":       true,
		"connection.blocked":           true,
		"authentication_failure_close": true,
		"per_consumer_qos":             true,
		"direct_reply_to":              true,
	}, props["capabilities"])

	finishHandshake(t, c, p, "/prod")
	require.Equal(t, "RabbitMQ", c.ServerProperties()["product"])
}

func TestHandshakeNoConnectionNameByDefault(t *testing.T) {
	_, _, ok := startOkFor(t, Config{Auth: []Auth{guest()}, Properties: Table{"app": "x"}}, "PLAIN")
	require.NotContains(t, ok.ClientProperties, "connection_name")
	require.Equal(t, "x", ok.ClientProperties["app"])
}

func TestHandshakeAMQPlain(t *testing.T) {
	c, p, ok := startOkFor(t, Config{Auth: []Auth{&AMQPlainAuth{Username: "guest", Password: "secret"}}},
		"PLAIN AMQPLAIN")
	require.Equal(t, "AMQPLAIN", ok.Mechanism)
	// A field table's content without its 4-byte length: it starts with
	// the short string "LOGIN".
	require.Equal(t, []byte("\x05LOGIN"), ok.Response[:6])
	withLength := binary.BigEndian.AppendUint32(nil, uint32(len(ok.Response)))
	tbl, err := DecodeTable(append(withLength, ok.Response...))
	require.NoError(t, err)
	require.Equal(t, Table{"LOGIN": "guest", "PASSWORD": "secret"}, tbl)
	finishHandshake(t, c, p, "/")
}

func TestHandshakeExternal(t *testing.T) {
	c, p, ok := startOkFor(t, Config{Auth: []Auth{ExternalAuth{}}}, "PLAIN EXTERNAL")
	require.Equal(t, "EXTERNAL", ok.Mechanism)
	require.Empty(t, ok.Response)
	finishHandshake(t, c, p, "/")
}

// challengeAuth is a custom mechanism with two challenge rounds, defined
// outside the core to show that a new mechanism needs only Auth.
type challengeAuth struct{ challenges []string }

func (*challengeAuth) Mechanism() string { return "X-CHALLENGE" }

func (a *challengeAuth) Response(challenge []byte) ([]byte, error) {
	if challenge == nil {
		return []byte("hello"), nil
	}
	a.challenges = append(a.challenges, string(challenge))
	return []byte("answer:" + string(challenge)), nil
}

func TestHandshakeSecureChallengeWithCustomAuth(t *testing.T) {
	auth := &challengeAuth{}
	c, p, ok := startOkFor(t, Config{Auth: []Auth{auth}}, "PLAIN X-CHALLENGE")
	require.Equal(t, "X-CHALLENGE", ok.Mechanism)
	require.Equal(t, []byte("hello"), ok.Response)

	for _, nonce := range []string{"nonce-1", "nonce-2"} {
		require.Empty(t, drive(t, c, t0, p.method(0, &ConnectionSecure{Challenge: []byte(nonce)})))
		require.Equal(t, []Method{&ConnectionSecureOk{Response: []byte("answer:" + nonce)}}, p.sentMethods(c))
	}
	require.Equal(t, []string{"nonce-1", "nonce-2"}, auth.challenges)
	finishHandshake(t, c, p, "/")
}

type failingAuth struct{}

func (failingAuth) Mechanism() string { return "PLAIN" }
func (failingAuth) Response([]byte) ([]byte, error) {
	return nil, errors.New("no token")
}

func TestHandshakeAuthResponseError(t *testing.T) {
	c, p := startConn(t, Config{Auth: []Auth{failingAuth{}}})
	evs := drive(t, c, t0, p.method(0, rabbitStart()))
	require.Equal(t, []EventKind{EventConnectionClosed}, kinds(evs))
	var he *HandshakeError
	require.ErrorAs(t, evs[0].Err, &he)
	require.Empty(t, p.sent(c))
}

func TestHandshakeMechanismChoice(t *testing.T) {
	plain, external := guest(), ExternalAuth{}
	for _, tc := range []struct {
		name    string
		client  []Auth
		offered string
		want    string
	}{
		{"server lists it last", []Auth{plain}, "AMQPLAIN EXTERNAL PLAIN", "PLAIN"},
		{"server lists it first", []Auth{plain}, "PLAIN AMQPLAIN", "PLAIN"},
		{"client preference wins over server order", []Auth{external, plain}, "PLAIN EXTERNAL", "EXTERNAL"},
		{"first offered of the client's list", []Auth{external, plain}, "AMQPLAIN PLAIN", "PLAIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, ok := startOkFor(t, Config{Auth: tc.client}, tc.offered)
			require.Equal(t, tc.want, ok.Mechanism)
		})
	}
}

func TestHandshakeNoCommonMechanism(t *testing.T) {
	c, p := startConn(t, Config{Auth: []Auth{guest()}})
	start := rabbitStart()
	start.Mechanisms = []byte("EXTERNAL AMQPLAIN")
	evs := drive(t, c, t0, p.method(0, start))
	require.Equal(t, []EventKind{EventConnectionClosed}, kinds(evs))
	var he *HandshakeError
	require.ErrorAs(t, evs[0].Err, &he)
	require.ErrorIs(t, evs[0].Err, ErrConnectionClosed)
	require.Empty(t, p.sent(c), "no start-ok without a mechanism")
	require.True(t, c.Closed())
}

func TestHandshakeUnsupportedStartVersion(t *testing.T) {
	c, p := startConn(t, Config{Auth: []Auth{guest()}})
	start := rabbitStart()
	start.VersionMinor = 8
	evs := drive(t, c, t0, p.method(0, start))
	var he *HandshakeError
	require.ErrorAs(t, evs[0].Err, &he)
}

func TestTuneNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		server  ConnectionTune
		want    Tuning
		wantHBs uint16 // heartbeat in tune-ok
	}{
		{"client takes the server's limits", Config{},
			ConnectionTune{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60},
			Tuning{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60 * time.Second}, 60},
		{"neither side limits: defaults", Config{},
			ConnectionTune{},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: DefaultFrameMax}, 0},
		{"server unlimited: client's limits", Config{ChannelMax: 3000, FrameMax: 1 << 20},
			ConnectionTune{},
			Tuning{ChannelMax: 3000, FrameMax: 1 << 20}, 0},
		{"a huge frame_max offered is capped", Config{},
			ConnectionTune{FrameMax: 1<<32 - 1},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: FrameMaxCap}, 0},
		{"the cap yields to the client's own frame_max", Config{FrameMax: 4 << 20},
			ConnectionTune{FrameMax: 1<<32 - 1},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: 4 << 20}, 0},
		{"client lower", Config{ChannelMax: 10, FrameMax: 8192},
			ConnectionTune{ChannelMax: 2047, FrameMax: 131072},
			Tuning{ChannelMax: 10, FrameMax: 8192}, 0},
		{"server lower", Config{ChannelMax: 4000, FrameMax: 1 << 20},
			ConnectionTune{ChannelMax: 100, FrameMax: 65536},
			Tuning{ChannelMax: 100, FrameMax: 65536}, 0},
		{"frame_max floor: RabbitMQ 4.1 refuses less than 8192", Config{FrameMax: 1000},
			ConnectionTune{FrameMax: 131072},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: RabbitMinFrameMax}, 0},
		{"frame_max floor: a server offering less is obeyed", Config{FrameMax: 1000},
			ConnectionTune{FrameMax: 4096},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: FrameMinSize}, 0},
		{"frame_max floor: the spec's minimum", Config{},
			ConnectionTune{FrameMax: 1000},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: FrameMinSize}, 0},
		{"heartbeat 0 takes the server's", Config{Heartbeat: 0},
			ConnectionTune{Heartbeat: 60},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: DefaultFrameMax, Heartbeat: 60 * time.Second}, 60},
		{"negative heartbeat disables", Config{Heartbeat: -1},
			ConnectionTune{Heartbeat: 60},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: DefaultFrameMax}, 0},
		{"heartbeat lower than the server's", Config{Heartbeat: 10 * time.Second},
			ConnectionTune{Heartbeat: 60},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: DefaultFrameMax, Heartbeat: 10 * time.Second}, 10},
		{"heartbeat higher than the server's", Config{Heartbeat: 120 * time.Second},
			ConnectionTune{Heartbeat: 60},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: DefaultFrameMax, Heartbeat: 60 * time.Second}, 60},
		{"heartbeat when the server proposes none", Config{Heartbeat: 10 * time.Second},
			ConnectionTune{Heartbeat: 0},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: DefaultFrameMax, Heartbeat: 10 * time.Second}, 10},
		{"heartbeat rounds up to seconds", Config{Heartbeat: 1500 * time.Millisecond},
			ConnectionTune{Heartbeat: 60},
			Tuning{ChannelMax: DefaultChannelMax, FrameMax: DefaultFrameMax, Heartbeat: 2 * time.Second}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Auth = []Auth{guest()}
			c, p, _ := startOkFor(t, tc.cfg, "PLAIN")
			require.Empty(t, drive(t, c, t0, p.method(0, &tc.server)))
			require.Equal(t, []Method{
				&ConnectionTuneOk{ChannelMax: tc.want.ChannelMax, FrameMax: tc.want.FrameMax, Heartbeat: tc.wantHBs},
				&ConnectionOpen{VirtualHost: "/"},
			}, p.sentMethods(c))
			require.Equal(t, []EventKind{EventConnected}, kinds(drive(t, c, t0, p.method(0, &ConnectionOpenOk{}))))
			require.Equal(t, tc.want, c.Tuning())
		})
	}
}

func TestHandshakeAccessRefused(t *testing.T) {
	c, p, _ := startOkFor(t, Config{Auth: []Auth{guest()}}, "PLAIN")
	evs := drive(t, c, t0, p.method(0, &ConnectionClose{ReplyCode: uint16(AccessRefused),
		ReplyText: "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN"}))
	require.Equal(t, []EventKind{EventConnectionClosed}, kinds(evs))
	var ce *CloseError
	require.ErrorAs(t, evs[0].Err, &ce)
	require.Equal(t, AccessRefused, ce.Code)
	require.True(t, ce.Server)
	require.True(t, ce.Connection)
	require.ErrorIs(t, evs[0].Err, ErrAccessRefused)
	require.ErrorIs(t, evs[0].Err, ErrConnectionClosed)
	require.NotErrorIs(t, evs[0].Err, ErrChannelClosed)
	require.Equal(t, []Method{&ConnectionCloseOk{}}, p.sentMethods(c))
	require.True(t, c.Closed())
}

func TestHandshakeUnknownVhost(t *testing.T) {
	c, p, _ := startOkFor(t, Config{Auth: []Auth{guest()}, Vhost: "nope"}, "PLAIN")
	require.Empty(t, drive(t, c, t0, p.method(0, &ConnectionTune{FrameMax: 131072})))
	require.Equal(t, &ConnectionOpen{VirtualHost: "nope"}, p.sentMethods(c)[1])
	evs := drive(t, c, t0, p.method(0, &ConnectionClose{ReplyCode: uint16(NotAllowed),
		ReplyText: "NOT_ALLOWED - vhost nope not found", ClassID: ClassConnection, MethodID: ConnectionOpenID.Method()}))
	require.Equal(t, []EventKind{EventConnectionClosed}, kinds(evs))
	var ce *CloseError
	require.ErrorAs(t, evs[0].Err, &ce)
	require.Equal(t, NotAllowed, ce.Code)
	require.Equal(t, ConnectionOpenID.Method(), ce.MethodID)
	require.ErrorIs(t, evs[0].Err, ErrNotAllowed)
	require.Equal(t, []Method{&ConnectionCloseOk{}}, p.sentMethods(c))
}

func TestHandshakeVersionMismatch(t *testing.T) {
	for _, header := range []string{"AMQP\x00\x00\x09\x00", "AMQP\x01\x01\x00\x0a"} {
		t.Run(strings.ReplaceAll(header, "\x00", "."), func(t *testing.T) {
			c, p := startConn(t, Config{Auth: []Auth{guest()}})
			// A prefix too short to tell waits for more.
			for k := range 8 {
				require.Zero(t, c.Receive(t0, []byte(header[:k])), "prefix %d", k)
			}
			require.Empty(t, drain(c))
			evs := drive(t, c, t0, []byte(header))
			require.Equal(t, []EventKind{EventConnectionClosed}, kinds(evs))
			var ve *VersionError
			require.ErrorAs(t, evs[0].Err, &ve)
			require.Equal(t, header[4:], string(ve.Server[:]))
			require.ErrorIs(t, evs[0].Err, ErrConnectionClosed)
			require.Empty(t, p.sent(c))
		})
	}
}

func TestHandshakeEOFAfterStartOk(t *testing.T) {
	c, _, _ := startOkFor(t, Config{Auth: []Auth{guest()}}, "PLAIN")
	c.ConnectionLost(io.EOF)
	evs := drain(c)
	require.Equal(t, []EventKind{EventConnectionClosed}, kinds(evs))
	var he *HandshakeError
	require.ErrorAs(t, evs[0].Err, &he)
	require.ErrorIs(t, evs[0].Err, ErrConnectionClosed)

	c.ConnectionLost(io.EOF) // once only
	require.Empty(t, drain(c))
}

// A broker with authentication_failure_close (RabbitMQ) refuses wrong
// credentials with a 403: a socket it closes during authentication is a
// lost connection, not a hint about the credentials.
func TestHandshakeEOFAfterStartOkWithAuthenticationFailureClose(t *testing.T) {
	c, p := startConn(t, Config{Auth: []Auth{guest()}})
	start := rabbitStart()
	start.ServerProperties["capabilities"].(Table)["authentication_failure_close"] = true
	require.Empty(t, drive(t, c, t0, p.method(0, start)))
	c.ConnectionLost(io.ErrUnexpectedEOF)
	evs := drain(c)
	require.Equal(t, []EventKind{EventConnectionClosed}, kinds(evs))
	var he *HandshakeError
	require.False(t, errors.As(evs[0].Err, &he), "not a handshake refusal: %v", evs[0].Err)
	require.ErrorIs(t, evs[0].Err, io.ErrUnexpectedEOF)
	require.ErrorIs(t, evs[0].Err, ErrConnectionClosed)
}

func TestConnectionLostNilError(t *testing.T) {
	c, _, _ := startOkFor(t, Config{Auth: []Auth{guest()}}, "PLAIN")
	require.NotPanics(t, func() { c.ConnectionLost(nil) })
	evs := drain(c)
	var he *HandshakeError
	require.ErrorAs(t, evs[0].Err, &he)

	c, _ = openConn(t, 0)
	c.ConnectionLost(nil)
	evs = drain(c)
	require.ErrorIs(t, evs[0].Err, io.EOF)
	require.ErrorIs(t, evs[0].Err, ErrConnectionClosed)
}

// A Config the codec cannot encode fails the handshake; it must not panic.
func TestHandshakeUnencodableConfig(t *testing.T) {
	t.Run("vhost", func(t *testing.T) {
		c, p, _ := startOkFor(t, Config{Auth: []Auth{guest()}, Vhost: strings.Repeat("v", 256)}, "PLAIN")
		evs := drive(t, c, t0, p.method(0, &ConnectionTune{}))
		var he *HandshakeError
		require.ErrorAs(t, evs[len(evs)-1].Err, &he)
	})
	t.Run("property", func(t *testing.T) {
		c, p := startConn(t, Config{Auth: []Auth{guest()}, Properties: Table{"bad": struct{}{}}})
		evs := drive(t, c, t0, p.method(0, rabbitStart()))
		var he *HandshakeError
		require.ErrorAs(t, evs[0].Err, &he)
		require.Empty(t, p.sent(c))
	})
	t.Run("locale", func(t *testing.T) {
		c, p := startConn(t, Config{Auth: []Auth{guest()}, Locale: strings.Repeat("l", 256)})
		start := rabbitStart()
		start.Locales = nil
		evs := drive(t, c, t0, p.method(0, start))
		var he *HandshakeError
		require.ErrorAs(t, evs[0].Err, &he)
	})
}

func TestHandshakeLocaleFallsBackToServers(t *testing.T) {
	c, p := startConn(t, Config{Auth: []Auth{guest()}, Locale: "fr_FR"})
	start := rabbitStart()
	start.Locales = []byte("en_US de_DE")
	drive(t, c, t0, p.method(0, start))
	require.Equal(t, "en_US", p.sentMethods(c)[0].(*ConnectionStartOk).Locale)
}

// Content frames during the handshake violate the protocol.
func TestHandshakeContentFrame(t *testing.T) {
	c, p := startConn(t, Config{Auth: []Auth{guest()}})
	body := AppendBodyFrames(nil, 0, []byte("x"), 0)
	evs := drive(t, c, t0, cat(p.method(0, rabbitStart()), body))
	var ce *CloseError
	require.ErrorAs(t, evs[0].Err, &ce)
	require.Equal(t, UnexpectedFrame, ce.Code)
	ms := p.sentMethods(c)
	require.Equal(t, uint16(UnexpectedFrame), ms[len(ms)-1].(*ConnectionClose).ReplyCode)
}
