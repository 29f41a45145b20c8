package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// tlsURL returns AMQPS_URL with the given query parameters.
func tlsURL(t testing.TB, query url.Values) string {
	t.Helper()
	u, err := url.Parse(env(t, "AMQPS_URL"))
	require.NoError(t, err)
	u.RawQuery = query.Encode()
	return u.String()
}

// roundTrip checks that a connection works: declare, publish, get.
func roundTrip(t testing.TB, c *amqp.Conn) {
	t.Helper()
	ch := confirmChannel(t, c)
	q := tempQueue(t, ch)
	publishConfirmed(t, ch, "", q, []byte("over TLS"))
	d, ok, err := ch.Get(ctxT(t), q, true)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "over TLS", string(d.Body))
}

func TestTLSVerifiesServer(t *testing.T) {
	t.Parallel()
	c := dialURL(t, tlsURL(t, nil), amqp.Config{ConnectionName: t.Name(),
		TLS: &tls.Config{RootCAs: caPool(t), ServerName: "localhost", MinVersion: tls.VersionTLS12}})
	roundTrip(t, c)
}

func TestTLSServerNotTrusted(t *testing.T) {
	t.Parallel()
	// The system roots do not know the test CA.
	_, err := amqp.Dial(ctxT(t), tlsURL(t, nil))
	var verr *tls.CertificateVerificationError
	require.ErrorAs(t, err, &verr)
	var derr *amqp.DialError
	require.ErrorAs(t, err, &derr)

	// Nor does a name the certificate was not issued for verify.
	_, err = amqp.DialConfig(ctxT(t), tlsURL(t, nil), amqp.Config{
		TLS: &tls.Config{RootCAs: caPool(t), ServerName: "not-the-broker.example"}})
	require.ErrorAs(t, err, &verr)
}

func TestTLSFromURIParameters(t *testing.T) {
	t.Parallel()
	c := dialURL(t, tlsURL(t, url.Values{
		"cacertfile": {env(t, "AMQP_TLS_CA")},
		"certfile":   {env(t, "AMQP_TLS_CERT")},
		"keyfile":    {env(t, "AMQP_TLS_KEY")},
		// The test CA signs the broker's certificate directly.
		"depth":                {"0"},
		"fail_if_no_peer_cert": {"true"},
	}), amqp.Config{ConnectionName: t.Name()})
	roundTrip(t, c)
}

func TestExternalAuth(t *testing.T) {
	t.Parallel()
	t.Run("Config", func(t *testing.T) {
		t.Parallel()
		c := dialURL(t, tlsURL(t, nil), amqp.Config{ConnectionName: t.Name(),
			Auth: []amqp.Auth{amqp.ExternalAuth{}},
			TLS: &tls.Config{RootCAs: caPool(t), ServerName: "localhost",
				Certificates: []tls.Certificate{clientCert(t, "AMQP_TLS_CERT", "AMQP_TLS_KEY")}}})
		roundTrip(t, c)
	})
	t.Run("URI", func(t *testing.T) {
		t.Parallel()
		c := dialURL(t, tlsURL(t, url.Values{
			"auth_mechanism": {"external"},
			"cacertfile":     {env(t, "AMQP_TLS_CA")},
			"certfile":       {env(t, "AMQP_TLS_CERT")},
			"keyfile":        {env(t, "AMQP_TLS_KEY")},
		}), amqp.Config{ConnectionName: t.Name()})
		roundTrip(t, c)
	})
}

// A client certificate the broker's CA did not sign is presented all the
// same, whether it comes from Config.TLS or from the URI's certfile, and
// the broker's refusal is the TLS alert, in a *DialError.
func TestTLSUntrustedClientCertificate(t *testing.T) {
	t.Parallel()
	untrusted := clientCert(t, "AMQP_TLS_UNTRUSTED_CERT", "AMQP_TLS_UNTRUSTED_KEY")
	fromURI := tlsURL(t, url.Values{
		"cacertfile": {env(t, "AMQP_TLS_CA")},
		"certfile":   {env(t, "AMQP_TLS_UNTRUSTED_CERT")},
		"keyfile":    {env(t, "AMQP_TLS_UNTRUSTED_KEY")},
	})
	for _, tc := range []struct {
		name    string
		version uint16
		tries   int
	}{
		// With TLS 1.3 the handshake completes on our side; the broker's
		// alert arrives at the first read, and our first write may meet
		// the reset that follows it: try that race several times.
		{"TLS1.3", tls.VersionTLS13, 8},
		// With TLS 1.2 it fails during the handshake.
		{"TLS1.2", tls.VersionTLS12, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range tc.tries {
				// Go alone would withhold this certificate, and the broker
				// would see none.
				cfg := amqp.Config{Auth: []amqp.Auth{amqp.ExternalAuth{}},
					TLS: &tls.Config{RootCAs: caPool(t), ServerName: "localhost", MinVersion: tc.version,
						MaxVersion: tc.version, Certificates: []tls.Certificate{untrusted}}}
				requireTLSAlert(t, func(ctx context.Context) error {
					_, err := amqp.DialConfig(ctx, tlsURL(t, nil), cfg)
					return err
				})
				requireTLSAlert(t, func(ctx context.Context) error {
					_, err := amqp.DialConfig(ctx, fromURI, amqp.Config{
						TLS: &tls.Config{MinVersion: tc.version, MaxVersion: tc.version}})
					return err
				})
			}
		})
	}
}

// requireTLSAlert checks that dial fails promptly with the broker's TLS
// alert, in a *DialError.
func requireTLSAlert(t *testing.T, dial func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := dial(ctx)
	require.Less(t, time.Since(start), 10*time.Second)
	var derr *amqp.DialError
	require.ErrorAs(t, err, &derr)
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, "remote error", oe.Op, "the broker's TLS alert, not %v", err)
}

// server_name_indication=disable sends no SNI and still verifies the
// broker's certificate, against the URL's host.
func TestTLSWithoutSNIStillVerifies(t *testing.T) {
	t.Parallel()
	c := dialURL(t, tlsURL(t, url.Values{
		"cacertfile":             {env(t, "AMQP_TLS_CA")},
		"server_name_indication": {"disable"},
	}), amqp.Config{ConnectionName: t.Name()})
	roundTrip(t, c)

	// Without the test CA the broker's certificate is not trusted.
	_, err := amqp.Dial(ctxT(t), tlsURL(t, url.Values{"server_name_indication": {"disable"}}))
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)
}
