package tests

import (
	"crypto/tls"
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
)

func TestConnAddressesAndTLSState(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	require.IsType(t, &net.TCPAddr{}, c.LocalAddr())
	_, port, err := net.SplitHostPort(c.RemoteAddr().String())
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(c.URI().Port), port)
	_, ok := c.ConnectionState()
	require.False(t, ok, "not TLS")

	tc := dialURL(t, tlsURL(t, nil), amqp.Config{ConnectionName: t.Name(),
		TLS: &tls.Config{RootCAs: caPool(t), ServerName: "localhost", MinVersion: tls.VersionTLS12}})
	state, ok := tc.ConnectionState()
	require.True(t, ok)
	require.True(t, state.HandshakeComplete)
	require.NotEmpty(t, state.PeerCertificates)
	require.NotNil(t, tc.LocalAddr())
}
