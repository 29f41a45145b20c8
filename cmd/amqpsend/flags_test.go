package main

import (
	"context"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
)

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		in    string
		key   string
		value any
	}{
		{"n=42", "n", int64(42)},
		{"n=-7", "n", int64(-7)},
		{"n=0", "n", int64(0)},
		{"n=9223372036854775807", "n", int64(9223372036854775807)},
		{"n=-9223372036854775808", "n", int64(-9223372036854775808)},
		{"n=9223372036854775808", "n", "9223372036854775808"}, // out of range stays text
		{"n=007", "n", "007"},                                 // would lose its zeros
		{"n=+7", "n", "+7"},
		{"n=-0", "n", "-0"},
		{"n=1e3", "n", "1e3"},
		{"n=1.5", "n", "1.5"},
		{"n= 1", "n", " 1"},
		{"b=true", "b", true},
		{"b=false", "b", false},
		{"b=True", "b", "True"},
		{"b=yes", "b", "yes"},
		{"s=hello", "s", "hello"},
		{"s=", "s", ""},
		{"s=a=b", "s", "a=b"},
		{"zip:=01234", "zip", "01234"},
		{"n:=42", "n", "42"},
		{"b:=true", "b", "true"},
		{"s:=", "s", ""},
		{"x:y=1", "x:y", int64(1)},
		{"x:y:=1", "x:y", "1"},
		{"ünï=ok", "ünï", "ok"},
	} {
		key, value, err := parseHeader(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.key, key, tc.in)
		require.Equal(t, tc.value, value, tc.in) // Equal compares types too
	}
}

func TestParseHeaderErrors(t *testing.T) {
	for _, in := range []string{"", "novalue", "=v", ":=v", strings.Repeat("k", 256) + "=v"} {
		_, _, err := parseHeader(in)
		require.Error(t, err, in)
	}
	// The value is never echoed: it may be a token.
	_, _, err := parseHeader("=s3cret")
	require.NotContains(t, err.Error(), "s3cret")
}

func TestHeaderFlagRepeats(t *testing.T) {
	o, err := parseArgs([]string{"--queue", "q", "-H", "a=1", "--header", "b=x", "-H", "a:=2", "--H=c=true", "m"}, noEnv)
	require.NoError(t, err)
	require.Equal(t, amqp.Table{"a": "2", "b": "x", "c": true}, o.props.Headers)
}

func noEnv(string) string { return "" }

func TestParseArgs(t *testing.T) {
	o, err := parseArgs([]string{"--queue", "jobs", "first", "--persistent", "-content-type", "text/plain",
		"second", "--priority=9", "--expiration", "1m", "--", "--third", "-H"}, noEnv)
	require.NoError(t, err)
	require.Equal(t, []string{"first", "second", "--third", "-H"}, o.messages)
	require.Equal(t, "jobs", o.queue)
	require.Equal(t, amqp.Persistent, o.props.DeliveryMode)
	require.Equal(t, "text/plain", o.props.ContentType)
	require.Equal(t, uint8(9), o.props.Priority)
	require.Equal(t, "60000", o.props.Expiration)
	require.Equal(t, defaultURL, o.url)
	require.Equal(t, defaultWindow, o.window)
	require.False(t, o.loadTest)
	require.Nil(t, o.props.Headers)
}

func TestParseArgsURL(t *testing.T) {
	getenv := func(k string) string {
		if k == "AMQP_URL" {
			return "amqp://u:p@envhost/"
		}
		return ""
	}
	o, err := parseArgs([]string{"--queue", "q"}, getenv)
	require.NoError(t, err)
	require.Equal(t, "envhost", o.uri.Host)
	require.Equal(t, "AMQP_URL", o.urlSource)

	o, err = parseArgs([]string{"--queue", "q", "--url", "amqps://flaghost/vh"}, getenv)
	require.NoError(t, err)
	require.Equal(t, "flaghost", o.uri.Host)
	require.Equal(t, "vh", o.uri.Vhost)
	require.Equal(t, 5671, o.uri.Port)

	o, err = parseArgs([]string{"--queue", "q"}, noEnv)
	require.NoError(t, err)
	require.Equal(t, "localhost", o.uri.Host)
}

func TestParseArgsLoadTest(t *testing.T) {
	o, err := parseArgs([]string{"--exchange", "amq.fanout", "--count", "10", "--rate", "2.5", "--json"}, noEnv)
	require.NoError(t, err)
	require.True(t, o.loadTest)
	require.Equal(t, 10, o.count)
	require.Equal(t, defaultSize, o.size)
	require.Equal(t, 2.5, o.rate)
	require.True(t, o.jsonOut)
}

func TestParseArgsHelp(t *testing.T) {
	for _, h := range []string{"-h", "--help", "-help"} {
		_, err := parseArgs([]string{"--queue", "q", h}, noEnv)
		require.ErrorIs(t, err, flag.ErrHelp, h)
	}
}

// TestParseArgsErrors checks that bad command lines are refused, each with
// a message naming what is wrong.
func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"m"}, "no destination"},
		{[]string{"--queue", "q", "--exchange", "x", "m"}, "--queue"},
		{[]string{"--queue", "q", "--routing-key", "k", "m"}, "--queue"},
		{[]string{"--exchange", "x", "--declare", "m"}, "--declare"},
		{[]string{"--queue", "q", "--lines", "m"}, "--lines"},
		{[]string{"--queue", "q", "--lines", "--file", "f"}, "--lines"},
		{[]string{"--queue", "q", "--count", "5", "m"}, "--count"},
		{[]string{"--queue", "q", "--count", "5", "--lines"}, "--count"},
		{[]string{"--queue", "q", "--count", "0"}, "--count"},
		{[]string{"--queue", "q", "--count", "-1"}, "--count"},
		{[]string{"--queue", "q", "--count", "x"}, "-count"},
		{[]string{"--queue", "q", "--size", "10", "m"}, "--size"},
		{[]string{"--queue", "q", "--count", "1", "--size", "-1"}, "--size"},
		{[]string{"--queue", "q", "--priority", "256", "m"}, "--priority"},
		{[]string{"--queue", "q", "--priority", "-1", "m"}, "-priority"},
		{[]string{"--queue", "q", "--expiration", "-5", "m"}, "--expiration"},
		{[]string{"--queue", "q", "--expiration", "1.5ms", "m"}, "--expiration"},
		{[]string{"--queue", "q", "--expiration", "soon", "m"}, "--expiration"},
		{[]string{"--queue", "q", "--timeout", "-1s", "m"}, "--timeout"},
		{[]string{"--queue", "q", "--timeout", "5", "m"}, "-timeout"},
		{[]string{"--queue", "q", "--rate", "-1", "m"}, "--rate"},
		{[]string{"--queue", "q", "--rate", "NaN", "m"}, "--rate"},
		{[]string{"--queue", "q", "--window", "0", "m"}, "--window"},
		{[]string{"--queue", "q", "--window", "5", "--no-confirm", "m"}, "--window"},
		{[]string{"--queue", "q", "-H", "novalue", "m"}, "header"},
		{[]string{"--queue", "q", "--auth", "kerberos", "m"}, "--auth"},
		{[]string{"--queue", "q", "--auth", "external", "m"}, "--auth external"},
		{[]string{"--queue", "q", "--auth", "external", "--url", "amqps://h/", "m"}, "--auth external"},
		{[]string{"--queue", "q", "--cacert", "ca.pem", "m"}, "amqps://"},
		{[]string{"--queue", "q", "--url", "amqps://h/", "--cert", "c.pem", "m"}, "--cert and --key"},
		{[]string{"--queue", "q", "--url", "amqps://h/", "--key", "k.pem", "m"}, "--cert and --key"},
		{[]string{"--queue", "q", "--url", "http://h/", "m"}, "--url"},
		{[]string{"--queue", "q", "--url", "amqp://u:hunter22@h:99999/", "m"}, "port"},
		{[]string{"--queue", "q", "--bogus", "m"}, "-bogus"},
		{[]string{"--queue"}, "-queue"},
	} {
		_, err := parseArgs(tc.args, noEnv)
		require.Error(t, err, tc.args)
		require.NotErrorIs(t, err, flag.ErrHelp)
		require.Contains(t, err.Error(), tc.says, tc.args)
		require.NotContains(t, err.Error(), "hunter22")
		require.NotContains(t, err.Error(), "\n")
	}
}

func TestParseExpiration(t *testing.T) {
	for in, want := range map[string]string{"0": "0", "60000": "60000", "1m": "60000", "1.5s": "1500", "250ms": "250"} {
		got, err := parseExpiration(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
}

// TestUsageNamesEveryFlag keeps --help in step with the flags.
func TestUsageNamesEveryFlag(t *testing.T) {
	newFlagSet(&options{}).VisitAll(func(f *flag.Flag) {
		name := "--" + f.Name
		if len(f.Name) == 1 {
			name = "-" + f.Name
		}
		require.Contains(t, usage, name+" ", "--help does not describe %s", name)
	})
	for _, want := range []string{"Usage: amqpsend", "Exit status:", "Examples:", "  0  ", "  1  ", "  2  ", "  3  "} {
		require.Contains(t, usage, want)
	}
	for i, line := range strings.Split(usage, "\n") {
		require.LessOrEqual(t, len(line), 80, "usage line %d is too long: %q", i+1, line)
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus"},
		{"--queue", "q", "--url", "amqp://guest:Sup3rSecret@h:port/", "m"},
		{"--queue", "q", "--url", "ftp://guest:Sup3rSecret@h/", "m"},
		// Passwords with an unescaped "?" or "#", spilling out of the
		// user information.
		{"--queue", "q", "--url", "amqp://guest:5672?Sup3rSecret@h/", "m"},
		{"--queue", "q", "--url", "amqp://guest:123456#Sup3rSecret@h/", "m"},
		{"--queue", "q", "--url", "amqp://guest:x?heartbeat=Sup3rSecret", "m"},
		{"--queue", "q", "--file", "/nonexistent/amqpsend-test-file"},
		{"--queue", "q", "--url", "amqps://h/", "--cacert", "/nonexistent/ca.pem", "m"},
	} {
		out := runInProcess(t, strings.NewReader(""), nil, args...)
		require.Equal(t, exitUsage, out.code, args)
		require.Empty(t, out.stdout)
		require.Len(t, out.errorLines(), 1, "one line: %q", out.stderr)
		require.True(t, strings.HasPrefix(out.stderr, "amqpsend: "), out.stderr)
		require.NotContains(t, out.stderr, "Sup3rSecret")
	}
}

func TestRunHelp(t *testing.T) {
	out := runInProcess(t, strings.NewReader(""), nil, "--help")
	require.Equal(t, exitOK, out.code)
	require.Equal(t, usage, out.stdout)
	require.Empty(t, out.stderr)
}

func TestRunBadInputTimeout(t *testing.T) {
	// A --timeout that has already run out while reading standard input.
	out := runInProcess(t, blockingReader{}, nil, "--queue", "q", "--timeout", "1ns")
	require.Equal(t, exitUndelivered, out.code)
	require.Contains(t, out.stderr, "timed out")
}

// blockingReader waits a while before its end, like an idle terminal.
type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) {
	time.Sleep(100 * time.Millisecond)
	return 0, io.EOF
}

// An empty standard input (redirected from /dev/null, say) sends nothing
// and is a usage error, before connecting; an empty message is asked for
// as an argument.
func TestEmptyStandardInput(t *testing.T) {
	out := runInProcess(t, strings.NewReader(""), map[string]string{"AMQP_URL": "amqp://127.0.0.1:1/"}, "--queue", "q")
	require.Equal(t, exitUsage, out.code, out.stderr)
	require.Len(t, out.errorLines(), 1, "one line: %q", out.stderr)

	o, err := parseArgs([]string{"--queue", "q", ""}, noEnv)
	require.NoError(t, err)
	src, err := o.source(context.Background(), strings.NewReader(""))
	require.NoError(t, err)
	n := 0
	for m, err := range src {
		require.NoError(t, err)
		require.Empty(t, m.body)
		n++
	}
	require.Equal(t, 1, n, "one empty message")
}
