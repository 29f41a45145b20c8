package sansio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGeneratedCodeIsCurrent fails when running the generator would change
// the committed spec_gen.go.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator")
	}
	out := filepath.Join(t.TempDir(), "spec_gen.go")
	cmd := exec.Command("go", "run", "gen.go", "-o", out,
		"spec/amqp0-9-1.stripped.extended.xml", "spec/rabbitmq-extensions.xml")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run())
	want, err := os.ReadFile(out)
	require.NoError(t, err)
	got, err := os.ReadFile("spec_gen.go")
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got), "spec_gen.go is stale: run go generate ./...")
}
