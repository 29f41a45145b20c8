//go:build race

package actor

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOwnerCheckCatchesAnotherGoroutine(t *testing.T) {
	var o owner
	o.check() // no owner yet
	o.claim()
	o.check()
	panicked := make(chan any)
	go func() {
		defer func() { panicked <- recover() }()
		o.check()
	}()
	require.NotNil(t, <-panicked)
}
