package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/faultproxy"
	"github.com/stretchr/testify/require"
)

// amqpsend rides through a cut connection: it recovers and goes on, and
// its exit status stays honest: a message counts as confirmed only when
// its own confirm was acked, and one whose outcome is unknown makes it
// exit 3.
func TestLoadRidesThroughACut(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	u, err := url.Parse(brokerURL(t))
	require.NoError(t, err)
	p, err := faultproxy.New(u.Host)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	u.Host = p.Addr()

	const count = 6000
	done := make(chan outcome, 1)
	go func() {
		done <- runBinary(t, "", nil, "--url", u.String(), "--queue", q, "--count", "6000", "--size", "100",
			"--rate", "3000", "--window", "200", "--json")
	}()
	// Cut once a good part has been confirmed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := ch.QueueDeclarePassive(ctxT(t), q)
		require.NoError(t, err)
		if info.Messages >= 1000 {
			break
		}
		require.True(t, time.Now().Before(deadline), "amqpsend does not publish")
		time.Sleep(20 * time.Millisecond)
	}
	p.Cut()
	var out outcome
	select {
	case out = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("amqpsend did not finish after the cut")
	}
	var s summary
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &s), out.stderr)
	require.Equal(t, count, s.Sent, "it went on after the cut")
	require.Equal(t, count, s.Confirmed+s.Lost+s.Unconfirmed)
	require.Zero(t, s.Nacked+s.Returned)
	if s.Lost+s.Unconfirmed > 0 {
		require.Equal(t, exitUndelivered, out.code, "an unknown outcome is a failure")
	} else {
		require.Equal(t, exitOK, out.code)
	}
	info, err := ch.QueueDeclarePassive(ctxT(t), q)
	require.NoError(t, err)
	require.GreaterOrEqual(t, int(info.Messages), s.Confirmed, "every confirmed message is in the queue")
	require.GreaterOrEqual(t, p.Accepted(), 2, "it reconnected")
}

// --timeout bounds the whole run, closing included: when the broker stops
// reading (here a link gone silent) amqpsend exits at the timeout rather
// than wait out a close handshake that cannot complete.
func TestTimeoutBoundsTheCloseOnASilentBroker(t *testing.T) {
	for _, confirms := range []bool{true, false} {
		t.Run(map[bool]string{true: "confirms", false: "no-confirm"}[confirms], func(t *testing.T) {
			_, ch := dial(t)
			q := testQueue(t, ch, nil)
			u, err := url.Parse(brokerURL(t))
			require.NoError(t, err)
			p, err := faultproxy.New(u.Host)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, p.Close()) })
			u.Host = p.Addr()

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const timeout = 1500 * time.Millisecond
			args := []string{"--url", u.String(), "--queue", q, "--lines", "--timeout", timeout.String()}
			if !confirms {
				args = append(args, "--no-confirm")
			}
			cmd := exec.CommandContext(ctx, binary(t), args...)
			cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			defer stdin.Close()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			require.NoError(t, cmd.Start())
			_, err = io.WriteString(stdin, "before the silence\n")
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				info, err := ch.QueueDeclarePassive(ctxT(t), q)
				return err == nil && info.Messages == 1
			}, 20*time.Second, 10*time.Millisecond)
			p.Blackhole(true)
			err = cmd.Wait()
			took := time.Since(start)
			require.Equal(t, exitUndelivered, cmd.ProcessState.ExitCode(), "%v: %s", err, stderr.String())
			// Before, each close waited out closeTimeout (5 s); the margin is
			// for starting the process on a loaded machine.
			require.Less(t, took, timeout+3*time.Second, "the run outlived its --timeout: %s", stderr.String())
		})
	}
}
