package main

// End-to-end tests: the amqpsend binary against the real broker, read back
// with the Go API.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
)

func TestSendArguments(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	out := runBinary(t, "", nil, "--queue", q, "first", "second message", "--", "-third")
	require.Equal(t, exitOK, out.code)
	require.Empty(t, out.stdout)
	require.Empty(t, out.stderr)
	require.Equal(t, []string{"first", "second message", "-third"}, bodies(getAll(t, ch, q)))
}

func TestSendFiles(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.bin")
	body1 := []byte("{\"id\": 1}\n{\"id\": 2}\n")
	body2 := bytes.Repeat([]byte{0, 0xff, '\n', 7}, 50000) // binary, several frames
	require.NoError(t, os.WriteFile(f1, body1, 0o600))
	require.NoError(t, os.WriteFile(f2, body2, 0o600))
	out := runBinary(t, "ignored", nil, "--queue", q, "--file", f1, "--file", f2)
	require.Equal(t, exitOK, out.code)
	ds := getAll(t, ch, q)
	require.Len(t, ds, 2)
	require.Equal(t, body1, ds[0].Body)
	require.Equal(t, body2, ds[1].Body)
}

func TestSendStdin(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	in := "line one\nline two\n\n"
	out := runBinary(t, in, nil, "--queue", q)
	require.Equal(t, exitOK, out.code)
	require.Equal(t, []string{in}, bodies(getAll(t, ch, q)))

	// Empty standard input is a usage error and sends nothing; an empty
	// message is given as an argument.
	out = runBinary(t, "", nil, "--queue", q)
	require.Equal(t, exitUsage, out.code)
	out = runBinary(t, "", nil, "--queue", q, "")
	require.Equal(t, exitOK, out.code)
	require.Equal(t, []string{""}, bodies(getAll(t, ch, q)))
}

// Standard input from /dev/null, a character device but no terminal: no
// prompt to end it with Ctrl-D, and no empty message sent.
func TestSendStdinFromDevNull(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	null, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer null.Close()
	out := runBinaryFrom(t, null, nil, "--queue", q)
	require.Equal(t, exitUsage, out.code)
	require.Len(t, out.errorLines(), 1, "the usage error only, no prompt: %q", out.stderr)
	require.Empty(t, getAll(t, ch, q))
}

func TestSendLines(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	out := runBinary(t, "alpha\n\nbeta gamma\r\ndelta", nil, "--queue", q, "--lines")
	require.Equal(t, exitOK, out.code)
	require.Equal(t, []string{"alpha", "beta gamma", "delta"}, bodies(getAll(t, ch, q)))
}

func TestSendExchangeRoutingKey(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	key := uniqueName("rk")
	require.NoError(t, ch.QueueBind(ctxT(t), q, "amq.direct", key, nil))
	out := runBinary(t, "", nil, "--exchange", "amq.direct", "--routing-key", key, "--mandatory", "routed")
	require.Equal(t, exitOK, out.code)
	ds := getAll(t, ch, q)
	require.Equal(t, []string{"routed"}, bodies(ds))
	require.Equal(t, "amq.direct", ds[0].Exchange)
	require.Equal(t, key, ds[0].RoutingKey)
}

// TestSendHeadersAndProperties reads the typed headers and the properties
// back with the Go API.
func TestSendHeadersAndProperties(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	out := runBinary(t, "", nil, "--queue", q,
		"-H", "count=42", "-H", "negative=-7", "--header", "big=9223372036854775807",
		"-H", "yes=true", "-H", "no=false", "-H", "name=hello world", "-H", "zip:=01234",
		"-H", "forced:=17", "-H", "padded=007", "-H", "empty=",
		"--content-type", "application/json", "--content-encoding", "identity", "--persistent",
		"--message-id", "m-1", "--correlation-id", "c-1", "--reply-to", "replies",
		"--expiration", "60000", "--priority", "5", "--app-id", "amqpsend-test", "--type", "test.event",
		`{"ok":true}`)
	require.Equal(t, exitOK, out.code)
	ds := getAll(t, ch, q)
	require.Len(t, ds, 1)
	d := ds[0]
	require.Equal(t, `{"ok":true}`, string(d.Body))
	require.Equal(t, amqp.Table{
		"count": int64(42), "negative": int64(-7), "big": int64(9223372036854775807),
		"yes": true, "no": false, "name": "hello world", "zip": "01234",
		"forced": "17", "padded": "007", "empty": "",
	}, d.Headers) // require.Equal compares the dynamic types too
	require.IsType(t, int64(0), d.Headers["count"])
	require.IsType(t, true, d.Headers["yes"])
	require.IsType(t, "", d.Headers["zip"])
	require.Equal(t, "application/json", d.ContentType)
	require.Equal(t, "identity", d.ContentEncoding)
	require.Equal(t, amqp.Persistent, d.DeliveryMode)
	require.Equal(t, "m-1", d.MessageID)
	require.Equal(t, "c-1", d.CorrelationID)
	require.Equal(t, "replies", d.ReplyTo)
	require.Equal(t, "60000", d.Expiration)
	require.Equal(t, uint8(5), d.Priority)
	require.Equal(t, "amqpsend-test", d.AppID)
	require.Equal(t, "test.event", d.Type)
}

func TestSendDeclare(t *testing.T) {
	_, ch := dial(t)
	q := uniqueName("amqpsend-declared")
	t.Cleanup(func() { deleteQueue(t, q) })

	out := runBinary(t, "", nil, "--queue", q, "not sent")
	require.Equal(t, exitUndelivered, out.code)
	require.Len(t, out.errorLines(), 1)
	require.Contains(t, out.stderr, "--declare")

	out = runBinary(t, "", nil, "--queue", q, "--declare", "one")
	require.Equal(t, exitOK, out.code)
	out = runBinary(t, "", nil, "--queue", q, "--declare", "two") // it exists now
	require.Equal(t, exitOK, out.code)
	require.Equal(t, []string{"one", "two"}, bodies(getAll(t, ch, q)))

	// --declare leaves an existing durable queue alone.
	dq := uniqueName("amqpsend-durable")
	_, err := ch.QueueDeclare(ctxT(t), dq, amqp.QueueOptions{Durable: true})
	require.NoError(t, err)
	t.Cleanup(func() { deleteQueue(t, dq) })
	out = runBinary(t, "", nil, "--queue", dq, "--declare", "durable")
	require.Equal(t, exitOK, out.code)
	require.Equal(t, []string{"durable"}, bodies(getAll(t, ch, dq)))
}

func TestMandatoryUnroutable(t *testing.T) {
	brokerURL(t)
	key := uniqueName("nowhere")
	out := runBinary(t, "", nil, "--exchange", "amq.direct", "--routing-key", key, "--mandatory", "lost")
	require.Equal(t, exitUndelivered, out.code)
	require.Equal(t, []string{`amqpsend: message 1 returned by the broker: 312 NO_ROUTE: exchange "amq.direct", routing key "` + key + `"`},
		out.errorLines())

	// Without --mandatory the broker drops it and confirms: success.
	out = runBinary(t, "", nil, "--exchange", "amq.direct", "--routing-key", key, "dropped")
	require.Equal(t, exitOK, out.code)

	// Without confirms, returns are still caught.
	out = runBinary(t, "", nil, "--exchange", "amq.direct", "--routing-key", key, "--mandatory", "--no-confirm", "a", "b")
	require.Equal(t, exitUndelivered, out.code)
	require.Contains(t, out.stderr, "312 NO_ROUTE")
}

func TestMissingExchange(t *testing.T) {
	brokerURL(t)
	ex := uniqueName("no-such-exchange")
	for _, extra := range [][]string{nil, {"--no-confirm"}} {
		out := runBinary(t, "", nil, append([]string{"--exchange", ex, "a", "b"}, extra...)...)
		require.Equal(t, exitUndelivered, out.code)
		require.Contains(t, out.stderr, "404 NOT_FOUND - no exchange '"+ex+"'")
		require.Equal(t, 1, strings.Count(out.stderr, "404"), "the reason, once")
	}
}

// TestNack fills a queue that rejects publishes when full: the broker nacks.
func TestNack(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, amqp.Table{"x-max-length": int64(1), "x-overflow": "reject-publish"})
	out := runBinary(t, "", nil, "--queue", q, "one", "two", "three")
	require.Equal(t, exitUndelivered, out.code)
	require.Equal(t, []string{
		"amqpsend: message 2 nacked by the broker (it refused the message: a full queue with x-overflow=reject-publish, for example)",
		"amqpsend: message 3 nacked by the broker (it refused the message: a full queue with x-overflow=reject-publish, for example)",
		"amqpsend: sent 3, confirmed 1, failed 2, unconfirmed 0",
	}, out.errorLines())
	require.Equal(t, []string{"one"}, bodies(getAll(t, ch, q)))
}

func TestWrongPassword(t *testing.T) {
	uri, err := amqp.ParseURI(brokerURL(t))
	require.NoError(t, err)
	const password = "Wr0ng-Passw0rd-zq"
	uri.Password = password
	bad := "amqp://" + uri.Username + ":" + password + "@" + uri.Addr() + "/"
	for _, tc := range []struct {
		args    []string
		environ []string
	}{
		{[]string{"--url", bad, "--queue", "q", "m"}, nil},
		{[]string{"--queue", "q", "m"}, []string{"AMQP_URL=" + bad}},
		{[]string{"--url", bad, "--auth", "amqplain", "--queue", "q", "m"}, nil},
	} {
		out := runBinary(t, "", tc.environ, tc.args...)
		require.Equal(t, exitConnect, out.code)
		require.NotContains(t, out.stdout+out.stderr, password)
		require.Len(t, out.errorLines(), 1)
		require.True(t, strings.HasPrefix(out.stderr, "amqpsend: connect to "+uri.Addr()+": "), out.stderr)
		require.Contains(t, out.stderr, "403 ACCESS_REFUSED")
	}
}

func TestConnectFailures(t *testing.T) {
	uri, err := amqp.ParseURI(brokerURL(t))
	require.NoError(t, err)
	for _, tc := range []struct{ url, says string }{
		{"amqp://guest:guest@" + uri.Addr() + "/amqpsend-no-such-vhost", "530 NOT_ALLOWED"},
		{"amqp://guest:guest@127.0.0.1:1/", "connection refused"},
	} {
		out := runBinary(t, "", nil, "--url", tc.url, "--queue", "q", "m")
		require.Equal(t, exitConnect, out.code)
		require.Len(t, out.errorLines(), 1)
		require.Contains(t, out.stderr, tc.says)
	}
}

func TestMalformedURL(t *testing.T) {
	const password = "Secr3t-Pw-zq"
	for _, url := range []string{
		"amqp://guest:" + password + "@localhost:notaport/",
		"amqp://guest:" + password + "@[::1/",
		"http://guest:" + password + "@localhost/",
		"amqp://guest:" + password + "@localhost/a/b",
		"amqp://guest:" + password + "@localhost/?heartbeat=soon",
		"localhost:5672",
	} {
		out := runBinary(t, "", nil, "--url", url, "--queue", "q", "m")
		require.Equal(t, exitUsage, out.code, url)
		require.Len(t, out.errorLines(), 1, url)
		require.True(t, strings.HasPrefix(out.stderr, "amqpsend: --url: invalid URI "), out.stderr)
		require.NotContains(t, out.stderr, password)
	}
	out := runBinary(t, "", []string{"AMQP_URL=amqp://u:" + password + "@h:x/"}, "--queue", "q", "m")
	require.Equal(t, exitUsage, out.code)
	require.True(t, strings.HasPrefix(out.stderr, "amqpsend: AMQP_URL: invalid URI "), out.stderr)
	require.NotContains(t, out.stderr, password)
}

func TestUsageErrorExit(t *testing.T) {
	out := runBinary(t, "", nil, "--queue", "q", "--lines", "message")
	require.Equal(t, exitUsage, out.code)
	require.Len(t, out.errorLines(), 1)
	out = runBinary(t, "", nil, "--no-such-flag")
	require.Equal(t, exitUsage, out.code)
	require.Equal(t, "amqpsend: flag provided but not defined: -no-such-flag (see amqpsend --help)\n", out.stderr)
}

func TestHelpExit(t *testing.T) {
	out := runBinary(t, "", nil, "--help")
	require.Equal(t, exitOK, out.code)
	require.Equal(t, usage, out.stdout)
	out = runBinary(t, "", nil, "-h")
	require.Equal(t, exitOK, out.code)
}

func TestLoadTestJSON(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	out := runBinary(t, "", nil, "--queue", q, "--count", "3000", "--size", "200", "--window", "100", "--json")
	require.Equal(t, exitOK, out.code)
	require.Empty(t, out.stderr, "no progress bar without a terminal")
	var s summary
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &s))
	require.Equal(t, 3000, s.Messages)
	require.Equal(t, 3000, s.Sent)
	require.Equal(t, 3000, s.Confirmed)
	require.Zero(t, s.Nacked+s.Returned+s.Lost+s.Unconfirmed)
	require.Equal(t, int64(3000*200), s.Bytes)
	require.True(t, s.Confirms)
	require.Positive(t, s.MsgsPerSec)
	require.Positive(t, s.MBPerSec)
	require.NotNil(t, s.Latency)
	require.Positive(t, s.Latency.P50)
	require.GreaterOrEqual(t, s.Latency.P99, s.Latency.P50)
	info, err := ch.QueueDeclarePassive(ctxT(t), q)
	require.NoError(t, err)
	require.Equal(t, uint32(3000), info.Messages)
	d, ok, err := ch.Get(ctxT(t), q, true)
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, d.Body, 200)
}

// TestLoadTestBeyondMaxOutgoing publishes more bytes on one connection than
// amqp.Config.MaxOutgoing (4 MiB by default) can hold at once.
func TestLoadTestBeyondMaxOutgoing(t *testing.T) {
	// Regression: the byte bound on queued publishes was once never
	// released, so a connection stopped publishing after 4 MiB in total.
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	out := runBinary(t, "", nil, "--queue", q, "--count", "20000", "--size", "512", "--json", "--timeout", "30s")
	require.Equal(t, exitOK, out.code)
	var s summary
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &s))
	require.Equal(t, 20000, s.Confirmed)
}

func TestLoadTestText(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	out := runBinary(t, "", nil, "--queue", q, "--count", "50", "--size", "10", "--rate", "500")
	require.Equal(t, exitOK, out.code)
	require.Regexp(t, `^50 messages in [0-9.]+s: [0-9]+ msgs/s, [0-9.]+ MB/s, confirm latency p50 [0-9.]+ms p99 [0-9.]+ms\n$`, out.stdout)
}

func TestNoConfirm(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	out := runBinary(t, "", nil, "--queue", q, "--no-confirm", "--json", "x", "y")
	require.Equal(t, exitOK, out.code)
	var s summary
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &s))
	require.False(t, s.Confirms)
	require.Equal(t, 2, s.Sent)
	require.Nil(t, s.Latency)
	require.Equal(t, []string{"x", "y"}, bodies(getAll(t, ch, q)))
}

func TestTimeout(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	// Standard input that never ends: the run is cut short.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "--queue", q, "--lines", "--timeout", "500ms")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	_, err = io.WriteString(stdin, "before the timeout\n")
	require.NoError(t, err)
	err = cmd.Wait()
	require.Equal(t, exitUndelivered, cmd.ProcessState.ExitCode(), "%v: %s", err, stderr.String())
	require.Equal(t, "amqpsend: timed out after 500ms: sent 1, confirmed 1, unconfirmed 0\n", stderr.String())
	require.Equal(t, []string{"before the timeout"}, bodies(getAll(t, ch, q)))
}

// TestInterrupt stops a run reading lines with SIGINT: it reports what it
// sent and, every message being confirmed, exits 0.
func TestInterrupt(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			_, ch := dial(t)
			q := testQueue(t, ch, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary(t), "--queue", q, "--lines")
			cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			defer stdin.Close()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			_, err = io.WriteString(stdin, "one\ntwo\n")
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				info, err := ch.QueueDeclarePassive(ctxT(t), q)
				return err == nil && info.Messages == 2
			}, 20*time.Second, 20*time.Millisecond)
			require.NoError(t, cmd.Process.Signal(sig))
			err = cmd.Wait()
			require.Equal(t, exitOK, cmd.ProcessState.ExitCode(), "%v: %s", err, stderr.String())
			require.Equal(t, "amqpsend: interrupted: sent 2, confirmed 2, unconfirmed 0\n", stderr.String())
		})
	}
}

// TestInterruptLoadTest stops a load test before it has sent everything:
// what was sent is confirmed, but messages were left unsent, so exit 3.
func TestInterruptLoadTest(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "--queue", q, "--count", "1000000", "--rate", "200", "--json")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool {
		info, err := ch.QueueDeclarePassive(ctxT(t), q)
		return err == nil && info.Messages >= 10
	}, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err := cmd.Wait()
	require.Equal(t, exitUndelivered, cmd.ProcessState.ExitCode(), "%v: %s", err, stderr.String())
	var s summary
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &s), stdout.String())
	require.True(t, s.Interrupted)
	require.Equal(t, s.Sent, s.Confirmed, "waited for the outstanding confirms")
	require.Zero(t, s.Unconfirmed)
	require.Regexp(t, `^amqpsend: interrupted: sent [0-9]+, confirmed [0-9]+, unconfirmed 0\n$`, stderr.String())
	info, err := ch.QueueDeclarePassive(ctxT(t), q)
	require.NoError(t, err)
	require.Equal(t, uint32(s.Confirmed), info.Messages)
}

func TestTLSExternal(t *testing.T) {
	amqpsURL := envOrSkip(t, "AMQPS_URL")
	ca, cert, key := envOrSkip(t, "AMQP_TLS_CA"), envOrSkip(t, "AMQP_TLS_CERT"), envOrSkip(t, "AMQP_TLS_KEY")
	_, ch := dial(t)
	q := testQueue(t, ch, nil)

	out := runBinary(t, "", nil, "--url", amqpsURL, "--cacert", ca, "--cert", cert, "--key", key,
		"--auth", "external", "--queue", q, "over TLS")
	require.Equal(t, exitOK, out.code)
	ds := getAll(t, ch, q)
	require.Equal(t, []string{"over TLS"}, bodies(ds))

	// TLS with PLAIN (guest is only allowed from localhost, which we are).
	out = runBinary(t, "", nil, "--url", strings.Replace(amqpsURL, "amqps://", "amqps://guest:guest@", 1),
		"--cacert", ca, "--queue", q, "plain over TLS")
	require.Equal(t, exitOK, out.code)
	require.Equal(t, []string{"plain over TLS"}, bodies(getAll(t, ch, q)))

	// Without the CA the broker's certificate is not trusted: exit 2.
	out = runBinary(t, "", nil, "--url", amqpsURL, "--cert", cert, "--key", key, "--auth", "external", "--queue", q, "m")
	require.Equal(t, exitConnect, out.code)
	require.Len(t, out.errorLines(), 1)
	require.Contains(t, out.stderr, "certificate")

	// A client certificate from another CA: the broker refuses the handshake.
	if uc, uk := os.Getenv("AMQP_TLS_UNTRUSTED_CERT"), os.Getenv("AMQP_TLS_UNTRUSTED_KEY"); uc != "" && uk != "" {
		out = runBinary(t, "", nil, "--url", amqpsURL, "--cacert", ca, "--cert", uc, "--key", uk, "--auth", "external", "--queue", q, "m")
		require.Equal(t, exitConnect, out.code)
		require.Len(t, out.errorLines(), 1)
	}
}

// TestInProcess runs one publish through run in this process, so that
// goleak checks the goroutines of a whole run against a real broker.
func TestInProcess(t *testing.T) {
	_, ch := dial(t)
	q := testQueue(t, ch, nil)
	out := runInProcess(t, strings.NewReader("a\nb\n"), map[string]string{"AMQP_URL": brokerURL(t)}, "--queue", q, "--lines", "--json")
	require.Equal(t, exitOK, out.code, out.stderr)
	require.Equal(t, []string{"a", "b"}, bodies(getAll(t, ch, q)))
}
