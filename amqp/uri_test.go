package amqp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		in   string
		want URI
	}{
		{"amqp://", URI{Scheme: "amqp", Host: "localhost", Port: 5672, Vhost: "/"}},
		{"amqps://host", URI{Scheme: "amqps", Host: "host", Port: 5671, Vhost: "/"}},
		{"amqp://host/", URI{Scheme: "amqp", Host: "host", Port: 5672, Vhost: "/"}},
		{"amqp://host/%2f", URI{Scheme: "amqp", Host: "host", Port: 5672, Vhost: "/"}},
		{"amqp://host/%2Fprod", URI{Scheme: "amqp", Host: "host", Port: 5672, Vhost: "/prod"}},
		{"amqp://host/prod", URI{Scheme: "amqp", Host: "host", Port: 5672, Vhost: "prod"}},
		{"AMQP://user:p%40ss%3Aw@host:1234/v%20h", URI{Scheme: "amqp", Host: "host", Port: 1234,
			Username: "user", Password: "p@ss:w", Vhost: "v h"}},
		{"amqp://us%65r@[::1]:5673", URI{Scheme: "amqp", Host: "::1", Port: 5673, Username: "user", Vhost: "/"}},
		{"amqp://:secret@host", URI{Scheme: "amqp", Host: "host", Port: 5672, Password: "secret", Vhost: "/"}},
		{"amqp://h?heartbeat=10&frame_max=8192&channel_max=16&connection_timeout=2500",
			URI{Scheme: "amqp", Host: "h", Port: 5672, Vhost: "/", Heartbeat: 10 * time.Second, HeartbeatSet: true,
				FrameMax: 8192, ChannelMax: 16, ConnectionTimeout: 2500 * time.Millisecond}},
		{"amqp://h?heartbeat=0", URI{Scheme: "amqp", Host: "h", Port: 5672, Vhost: "/", HeartbeatSet: true}},
		{"amqps://h?depth=2&fail_if_no_peer_cert=true", URI{Scheme: "amqps", Host: "h", Port: 5671, Vhost: "/", Depth: 2, DepthSet: true}},
		{"amqps://h?auth_mechanism=external&auth_mechanism=plain&cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem&verify=verify_none&server_name_indication=rabbit.example",
			URI{Scheme: "amqps", Host: "h", Port: 5671, Vhost: "/", AuthMechanism: []string{"EXTERNAL", "PLAIN"},
				CACertFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem", Verify: "verify_none", ServerName: "rabbit.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseURI(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseURIErrorsNameThePartAndHideThePassword(t *testing.T) {
	tests := []struct{ in, part string }{
		{"", "scheme"},
		{"localhost:5672", "scheme"},
		{"http://host", "scheme"},
		{"amqp:host", "syntax"},
		{"amqp://host:99999", "port"},
		{"amqp://host:port", "syntax"},
		{"amqp://host:", "port"},
		{"amqp://host/a/b", "vhost"},
		{"amqp://host/%zz", "syntax"},
		{"amqp://host?heartbeat=abc", "heartbeat"},
		{"amqp://host?heartbeat=70000", "heartbeat"},
		{"amqp://host?frame_max=-1", "frame_max"},
		{"amqp://host?channel_max=x", "channel_max"},
		{"amqp://host?connection_timeout=soon", "connection_timeout"},
		{"amqp://host?auth_mechanism=kerberos", "auth_mechanism"},
		{"amqp://host?verify=maybe", "verify"},
		{"amqp://host?bogus=1", "query"},
		{"amqp://host?depth=-1", "depth"},
		{"amqps://host?keyfile=/k.pem&password=s3cret", "password"},
		{"amqp://user:s3cr%zzet@host", "syntax"},
		// A password with an unescaped "?", "#" or "/" spills out of the
		// user information.
		{"amqp://guest:5672?s3cret@host/", "syntax"},
		{"amqp://guest:5672?heartbeat=s3cret@host/", "syntax"},
		{"amqp://guest:123456#s3cret@host/", "syntax"},
		{"amqp://guest:5672#s3cret@host/", "syntax"},
		{"amqp://guest:12/s3cret@host", "syntax"},
		{"amqp://guest:s3cret9?x=1@host/", "syntax"},
		{"amqp://host:s3cr", "syntax"},
		{"amqp://host?s3cret=1", "query"},
		{"amqp://host?heartbeat=s3cret", "heartbeat"},
		{"amqp://host?verify=s3cret", "verify"},
		{"amqp://host?auth_mechanism=s3cret", "auth_mechanism"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseURI(tt.in)
			var ue *URIError
			require.True(t, errors.As(err, &ue), "got %v", err)
			require.Equal(t, tt.part, ue.Part)
			require.NotContains(t, err.Error(), "s3cr")
			require.True(t, strings.HasPrefix(err.Error(), "amqp: "))
		})
	}
}

func TestURIStringHidesPassword(t *testing.T) {
	u, err := ParseURI("amqp://user:topsecret@host:5673/prod")
	require.NoError(t, err)
	require.Equal(t, "amqp://user:xxxxx@host:5673/prod", u.String())
	u, err = ParseURI("amqps://host/%2f")
	require.NoError(t, err)
	require.Equal(t, "amqps://host:5671/%2F", u.String())
}

func TestDefaultAuthComesFromTheURI(t *testing.T) {
	u, _ := ParseURI("amqp://alice:pw@host")
	auth, err := authFor(u, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"PLAIN"}, mechanisms(auth))
	u, _ = ParseURI("amqp://host?auth_mechanism=amqplain&auth_mechanism=external")
	auth, err = authFor(u, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"AMQPLAIN", "EXTERNAL"}, mechanisms(auth))
}

func mechanisms[T interface{ Mechanism() string }](auth []T) []string {
	var names []string
	for _, a := range auth {
		names = append(names, a.Mechanism())
	}
	return names
}

func TestHeartbeatZeroInTheURIDisablesHeartbeats(t *testing.T) {
	u, _ := ParseURI("amqp://host?heartbeat=0")
	core, err := coreConfig(u, &Config{})
	require.NoError(t, err)
	require.Negative(t, core.Heartbeat)
	core, err = coreConfig(u, &Config{Heartbeat: 5 * time.Second})
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, core.Heartbeat)
}

func TestChainDepthAtMostCountsIntermediates(t *testing.T) {
	leaf, mid, root := &x509.Certificate{}, &x509.Certificate{}, &x509.Certificate{}
	direct := tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf, root}}}
	viaOne := tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf, mid, root}}}
	require.NoError(t, chainDepthAtMost(0, nil)(direct))
	require.Error(t, chainDepthAtMost(0, nil)(viaOne))
	require.NoError(t, chainDepthAtMost(1, nil)(viaOne))
	called := false
	next := func(tls.ConnectionState) error { called = true; return nil }
	require.NoError(t, chainDepthAtMost(1, next)(viaOne))
	require.True(t, called, "the caller's own VerifyConnection still runs")
}

func TestServerNameIndicationDisableSendsNoNameButVerifies(t *testing.T) {
	uri, err := ParseURI("amqps://rabbit.example?server_name_indication=disable")
	require.NoError(t, err)
	cfg, err := tlsConfig(uri, nil)
	require.NoError(t, err)
	require.Empty(t, cfg.ServerName, "no SNI")
	require.True(t, cfg.InsecureSkipVerify, "Go's own verification would send SNI")
	require.NotNil(t, cfg.VerifyConnection, "so the client verifies itself")
	require.Error(t, cfg.VerifyConnection(tls.ConnectionState{}), "no certificate is no trust")

	given, err := tlsConfig(uri, &tls.Config{ServerName: "mine"})
	require.NoError(t, err)
	require.Equal(t, "mine", given.ServerName, "the caller's config wins")
	require.False(t, given.InsecureSkipVerify)
}

// An "@" that is part of a vhost or a file name is written %40; unescaped
// it would read as the end of a password that spilled out.
func TestParseURIEscapedAt(t *testing.T) {
	u, err := ParseURI("amqp://host/team%40prod?certfile=/home/a%40b/c.pem")
	require.NoError(t, err)
	require.Equal(t, "team@prod", u.Vhost)
	require.Equal(t, "/home/a@b/c.pem", u.CertFile)
}

// However a URI holding a password is mangled, ParseURI's error does not
// quote any of the password: a property checked over many mutations of
// URIs whose password is known.
func TestParseURIErrorsNeverQuoteThePassword(t *testing.T) {
	const secret = "QxZ9kVw7Jq5"
	templates := []string{
		"amqp://guest:%s@host:5672/vh?heartbeat=10",
		"amqps://%s@host/",
		"amqp://user:%s@[::1]:5673/%%2f?auth_mechanism=plain&frame_max=8192",
		"amqp://u:%s@h?certfile=/c.pem&keyfile=/k.pem&verify=verify_peer",
	}
	special := []string{"?", "#", "/", "@", ":", "%", "[", "]", "&", "=", " ", "%zz", "\x00", "?heartbeat=", "?bogus", ":99999", "#9"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		pw := []byte(secret)
		for range 1 + rng.IntN(3) {
			at := rng.IntN(len(pw) + 1)
			ins := special[rng.IntN(len(special))]
			pw = append(pw[:at], append([]byte(ins), pw[at:]...)...)
		}
		in := fmt.Sprintf(templates[i%len(templates)], pw)
		_, err := ParseURI(in)
		if err == nil {
			continue
		}
		msg := err.Error()
		for j := 0; j+3 <= len(secret); j++ {
			require.NotContains(t, msg, secret[j:j+3], "ParseURI(%q)", in)
		}
	}
}

// %#v, %v and %+v of a URI, and of a Config holding PLAIN or AMQPLAIN
// credentials, hide the password.
func TestFormattingHidesThePassword(t *testing.T) {
	u, err := ParseURI("amqp://user:topsecret@host/")
	require.NoError(t, err)
	cfg := Config{Auth: []Auth{PlainAuth{"u", "topsecret"}, &AMQPlainAuth{"u", "topsecret"}}}
	for _, v := range []any{u, &u, cfg, &cfg, &Conn{uri: u}} {
		for _, verb := range []string{"%v", "%+v", "%#v"} {
			s := fmt.Sprintf(verb, v)
			require.NotContains(t, s, "topsecret", verb)
		}
	}
	require.Contains(t, fmt.Sprintf("%#v", u), `amqp.URI{Scheme:"amqp", Host:"host"`)
}
