package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/amqproto/amqproto/amqp"
	"github.com/amqproto/amqproto/internal/testenv"
)

// buildDir holds the amqpsend binary the end-to-end tests run.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	buildOut  []byte
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if buildDir != "" {
			os.RemoveAll(buildDir)
		}
	}))
}

// binary builds amqpsend once per test run (with -race when the tests run
// with it) and returns its path.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "amqpsend-test-")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-o", filepath.Join(buildDir, "amqpsend")}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	require.NoError(t, buildErr, "go build: %s", buildOut)
	return filepath.Join(buildDir, "amqpsend")
}

// envOrSkip returns the environment variable name; see testenv.Get.
func envOrSkip(t testing.TB, name string) string {
	t.Helper()
	return testenv.Get(t, name)
}

// tool returns the path of an external program, or skips (fails in CI)
// when it is not installed.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, name)
	}
	return p
}

// missing skips the test for want of what, or fails it in CI, where
// scripts/rabbitmq.sh up installs everything.
func missing(t testing.TB, what string) {
	t.Helper()
	testenv.Missing(t, what+" is not installed", "scripts/rabbitmq.sh up installs it")
}

func brokerURL(t testing.TB) string { return envOrSkip(t, "AMQP_URL") }

// ctxT returns a context bounded for one test step.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// outcome is how a run of the binary ended.
type outcome struct {
	stdout, stderr string
	code           int
}

// errorLines returns the lines of stderr.
func (o outcome) errorLines() []string {
	return strings.Split(strings.TrimRight(o.stderr, "\n"), "\n")
}

// runBinary runs amqpsend with args, stdin and extra environment variables
// (AMQP_URL is taken from the test's environment unless overridden).
func runBinary(t testing.TB, stdin string, environ []string, args ...string) outcome {
	t.Helper()
	return runBinaryFrom(t, strings.NewReader(stdin), environ, args...)
}

// runBinaryFrom is runBinary with standard input read from stdin, which
// the child gets as it is when it is an *os.File.
func runBinaryFrom(t testing.TB, stdin io.Reader, environ []string, args ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	// The race runtime otherwise sleeps a second at exit.
	cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), environ...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run amqpsend: %v", err)
	}
	o := outcome{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	t.Logf("amqpsend %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), o.code, o.stdout, o.stderr)
	require.NotContains(t, o.stderr, "DATA RACE")
	require.NotContains(t, o.stderr, "goroutine ", "a stack trace")
	return o
}

// dial connects with the Go API and closes the connection when the test
// ends.
func dial(t testing.TB) (*amqp.Conn, *amqp.Channel) {
	t.Helper()
	c, err := amqp.DialConfig(ctxT(t), brokerURL(t), amqp.Config{ConnectionName: t.Name()})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	ch, err := c.Channel(ctxT(t))
	require.NoError(t, err)
	return c, ch
}

// uniqueName returns a name no other test or run uses.
func uniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// testQueue declares a queue with args for the test, deleted when it ends.
func testQueue(t testing.TB, ch *amqp.Channel, args amqp.Table) string {
	t.Helper()
	q := uniqueName("amqpsend-test")
	_, err := ch.QueueDeclare(ctxT(t), q, amqp.QueueOptions{Args: args})
	require.NoError(t, err)
	t.Cleanup(func() { deleteQueue(t, q) })
	return q
}

// deleteQueue deletes q on a connection of its own: the test's may be gone.
func deleteQueue(t testing.TB, q string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := amqp.Dial(ctx, brokerURL(t))
	if err != nil {
		t.Logf("delete queue %s: %v", q, err)
		return
	}
	defer c.Close(ctx)
	if ch, err := c.Channel(ctx); err == nil {
		_, _ = ch.QueueDelete(ctx, q, false, false)
	}
}

// getAll fetches every message of q (auto-ack).
func getAll(t testing.TB, ch *amqp.Channel, q string) []amqp.Delivery {
	t.Helper()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(ctxT(t), q, true)
		require.NoError(t, err)
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

func bodies(ds []amqp.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

// runInProcess runs run with the given arguments and standard input,
// without a broker unless the arguments need one.
func runInProcess(t testing.TB, stdin io.Reader, environ map[string]string, args ...string) outcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, env{stdin: stdin, stdout: &stdout, stderr: &stderr,
		getenv: func(k string) string { return environ[k] }})
	return outcome{stdout: stdout.String(), stderr: stderr.String(), code: code}
}
