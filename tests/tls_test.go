package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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

func TestTLSUntrustedClientCertificate(t *testing.T) {
	t.Parallel()
	untrusted := clientCert(t, "AMQP_TLS_UNTRUSTED_CERT", "AMQP_TLS_UNTRUSTED_KEY")
	// Go sends a certificate from tls.Config.Certificates only when its
	// issuer is among the CAs the broker's CertificateRequest accepts;
	// GetClientCertificate makes it send this one regardless, as other
	// clients do.
	force := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &untrusted, nil }
	for _, tc := range []struct {
		name    string
		version uint16
	}{
		// With TLS 1.3 the handshake completes on our side; the broker's
		// refusal arrives at the first read.
		{"TLS1.3", tls.VersionTLS13},
		// With TLS 1.2 it fails during the handshake.
		{"TLS1.2", tls.VersionTLS12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			_, err := amqp.DialConfig(ctx, tlsURL(t, nil), amqp.Config{
				TLS: &tls.Config{RootCAs: caPool(t), ServerName: "localhost", MinVersion: tc.version,
					MaxVersion: tc.version, GetClientCertificate: force}})
			require.Error(t, err)
			require.NotErrorIs(t, err, context.DeadlineExceeded)
			require.Less(t, time.Since(start), 10*time.Second)
			if tc.version == tls.VersionTLS13 {
				// The alert, or a reset if our first write races it.
				require.ErrorIs(t, err, amqp.ErrConnectionClosed)
			} else {
				var derr *amqp.DialError
				require.ErrorAs(t, err, &derr)
			}
		})
	}

	// Through Config.Certificates Go withholds the certificate, so the
	// broker sees none: EXTERNAL cannot authenticate, and says so.
	t.Run("EXTERNAL", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		_, err := amqp.DialConfig(ctx, tlsURL(t, nil), amqp.Config{Auth: []amqp.Auth{amqp.ExternalAuth{}},
			TLS: &tls.Config{RootCAs: caPool(t), ServerName: "localhost", Certificates: []tls.Certificate{untrusted}}})
		require.ErrorIs(t, err, amqp.ErrAccessRefused)
		require.Less(t, time.Since(start), 10*time.Second)
	})
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
