//go:build linux

package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// /dev/null is a character device, not a terminal: amqpsend must not ask
// for input on it (nor say "end it with Ctrl-D").
func TestIsTerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer null.Close()
	require.False(t, isTerminal(null))

	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	require.False(t, isTerminal(r))

	// The master side of a pseudo-terminal answers as a terminal.
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Logf("no pseudo-terminal to check the positive case: %v", err)
		return
	}
	defer pty.Close()
	require.True(t, isTerminal(pty))
}
