package amqp

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/internal/sansio"
)

func TestAuthValueOrPointer(t *testing.T) {
	for _, a := range []Auth{
		PlainAuth{"u", "secret"}, &PlainAuth{"u", "secret"},
		AMQPlainAuth{"u", "secret"}, &AMQPlainAuth{"u", "secret"},
		ExternalAuth{}, &ExternalAuth{},
	} {
		_, err := a.Response(nil)
		require.NoError(t, err, "%T", a)
		for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%#v", a), fmt.Sprintf("%+v", a)} {
			require.NotContains(t, s, "secret", "%T", a)
		}
	}
}

// The responses are the bytes the broker expects, as the core's own
// mechanisms (tested against RabbitMQ) send them.
func TestAuthResponses(t *testing.T) {
	got, err := PlainAuth{"guest", "pw"}.Response(nil)
	require.NoError(t, err)
	require.Equal(t, []byte("\x00guest\x00pw"), got)

	got, err = AMQPlainAuth{"guest", "pw"}.Response(nil)
	require.NoError(t, err)
	want, err := (&sansio.AMQPlainAuth{Username: "guest", Password: "pw"}).Response(nil)
	require.NoError(t, err)
	require.Equal(t, want, got)
}
