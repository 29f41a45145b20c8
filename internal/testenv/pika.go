package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// Python is the system's python3, where Debian's python3-pika is installed
// (another python3 earlier on PATH may lack it).
const Python = "/usr/bin/python3"

// PeerURL returns brokerURL in the form other clients (pika, amqp-tools)
// want: credentials and the vhost always spelt out, "/" as %2f. (This
// library reads the vhost of "amqp://host/" as "/"; amqp-tools as "".)
func PeerURL(t testing.TB, brokerURL string) string {
	t.Helper()
	uri, err := amqp.ParseURI(brokerURL)
	require.NoError(t, err)
	user, pass := uri.Username, uri.Password
	if user == "" && pass == "" {
		user, pass = "guest", "guest"
	}
	vhost := uri.Vhost
	if vhost == "" {
		vhost = "/"
	}
	return fmt.Sprintf("%s://%s@%s/%s", uri.Scheme, url.UserPassword(user, pass), uri.Addr(), strings.ToLower(url.PathEscape(vhost)))
}

// RunPika runs a pika script with the broker's URL (in PeerURL's form) and
// args as its arguments, and returns what it printed. Without pika it
// skips the test (fails it in CI).
func RunPika(t testing.TB, brokerURL, script string, args ...string) string {
	t.Helper()
	if err := exec.Command(Python, "-c", "import pika").Run(); err != nil {
		Missing(t, Python+" with python3-pika is not installed", "scripts/rabbitmq.sh up installs it")
	}
	file := filepath.Join(t.TempDir(), "script.py")
	require.NoError(t, os.WriteFile(file, []byte(script), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, Python, append([]string{file, PeerURL(t, brokerURL)}, args...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}
