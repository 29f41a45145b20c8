package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
)

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no exchange 'x' in vhost '/'", ClassID: 60, MethodID: 40, Server: true},
			"the broker closed the channel: 404 NOT_FOUND - no exchange 'x' in vhost '/'"},
		{&amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED - Login was refused", Server: true, Connection: true},
			"the broker closed the connection: 403 ACCESS_REFUSED - Login was refused"},
		{&amqp.Error{Code: amqp.ConnectionForced, Reason: "shutdown", Server: true, Connection: true},
			"the broker closed the connection: 320 CONNECTION_FORCED - shutdown"},
		{&amqp.Error{Code: amqp.FrameError, Reason: "unknown frame type 72", Connection: true},
			"protocol error (is this an AMQP 0-9-1 port?): 501 FRAME_ERROR - unknown frame type 72"},
		{fmt.Errorf("wrapped: %w", &amqp.DialError{Addr: "h:1", Err: errors.New("dial tcp h:1: connection refused")}),
			"dial tcp h:1: connection refused"},
		{&amqp.URIError{Part: "port", Text: "empty"}, "invalid URI port: empty"},
		{errors.New("plain"), "plain"},
	} {
		require.Equal(t, tc.want, describe(tc.err))
	}
}

func TestRedact(t *testing.T) {
	require.Equal(t, "login xxxxx refused", redact("login hunter22 refused", "hunter22", "bob"))
	require.Equal(t, "user guest refused", redact("user guest refused", "guest", "guest"), "the user name is left alone")
	require.Equal(t, "a b c", redact("a b c", "b", "u"), "too short to hide")
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 50*time.Millisecond, percentile(d, 50))
	require.Equal(t, 99*time.Millisecond, percentile(d, 99))
	require.Equal(t, 100*time.Millisecond, percentile(d, 100))
	require.Equal(t, time.Millisecond, percentile(d, 0))
	one := []time.Duration{7 * time.Millisecond}
	require.Equal(t, 7*time.Millisecond, percentile(one, 50))
	require.Equal(t, 7*time.Millisecond, percentile(one, 99))
}

func TestSummarize(t *testing.T) {
	start := time.Unix(0, 0)
	r := result{sent: 4, sentBytes: 4e6, start: start, end: start.Add(2 * time.Second),
		confirmStats: confirmStats{confirmed: 3, confirmedBytes: 3e6, nacked: 1,
			latencies: []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}}}
	s := summarize(r, true)
	require.Equal(t, 3, s.Messages)
	require.Equal(t, 1.5, s.MsgsPerSec)
	require.Equal(t, 1.5, s.MBPerSec)
	require.Equal(t, &latency{P50: 2, P99: 3, Max: 3}, s.Latency)
	require.Equal(t, "sent 4, confirmed 3, failed 1, unconfirmed 0", s.counts())
	require.Equal(t, "3 messages in 2.000s: 2 msgs/s, 1.50 MB/s, confirm latency p50 2.000ms p99 3.000ms (sent 4, confirmed 3, failed 1, unconfirmed 0)", s.text())

	var back summary
	require.NoError(t, json.Unmarshal([]byte(s.json()), &back))
	require.Equal(t, s, back)

	s = summarize(r, false)
	require.Equal(t, 4, s.Messages)
	require.Equal(t, "sent 4 (without confirms)", s.counts())
	require.NotContains(t, s.json(), "confirm_latency_ms")
}

func TestProgressLine(t *testing.T) {
	require.Equal(t, "["+strings.Repeat(".", 30)+"]   0% 0/10 sent, 0 settled, 0 msgs/s",
		progressLine(0, 0, 10, 0))
	require.Equal(t, "["+strings.Repeat("#", 15)+strings.Repeat(".", 15)+"]  50% 7/10 sent, 5 settled, 5 msgs/s",
		progressLine(7, 5, 10, time.Second))
	require.Equal(t, "["+strings.Repeat("#", 30)+"] 100% 10/10 sent, 10 settled, 20 msgs/s",
		progressLine(10, 10, 10, 500*time.Millisecond))
}

func TestConsoleFailures(t *testing.T) {
	var buf bytes.Buffer
	c := &console{w: &buf, password: "hunter22"}
	for i := range 20 {
		c.failure(failure{name: fmt.Sprint("message ", i+1), kind: failNacked, sample: true})
	}
	c.failure(failure{name: "message 21", kind: failNacked, sample: false})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, maxFailureLines)
	require.Equal(t, "amqpsend: message 1 nacked by the broker (it refused the message: a full queue with x-overflow=reject-publish, for example)", lines[0])
	require.Equal(t, "amqpsend: more messages failed; not showing them", lines[maxFailureLines-1])

	buf.Reset()
	c.errorf("multi\nline with hunter22")
	require.Equal(t, "amqpsend: multi line with xxxxx\n", buf.String())
}

func TestConsoleBar(t *testing.T) {
	var buf bytes.Buffer
	c := &console{w: &buf}
	c.showBar("[##]")
	c.errorf("oops")
	c.showBar("")
	require.Equal(t, "\r[##]\x1b[K"+"\r\x1b[K"+"amqpsend: oops\n"+"[##]"+"\r\x1b[K\r\x1b[K", buf.String())
}

func TestConsoleToldLost(t *testing.T) {
	var buf bytes.Buffer
	c := &console{w: &buf}
	closed := &amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no exchange 'x'", Server: true}
	require.False(t, c.told(closed))
	c.failure(failure{name: "message 1", kind: failLost, err: closed, sample: true})
	require.True(t, c.told(closed))
	require.False(t, c.told(amqp.ErrNacked))
}
