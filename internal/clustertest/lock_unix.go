//go:build unix

package clustertest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// lockCluster gives the test the cluster to itself until it ends: tests
// that kill nodes must not overlap, even from `go test` runs of other
// worktrees that share the cluster, or two dead nodes would leave the
// quorum queues without a majority. The lock is an flock on a file in the
// cluster's state directory (beside the script).
func (c *Cluster) lockCluster(t testing.TB) {
	t.Helper()
	name := filepath.Join(filepath.Dir(c.script), ".tests.lock")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	deadline := time.Now().Add(lockTimeout)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			t.Fatalf("clustertest: locking %s: %v", name, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			t.Fatalf("clustertest: another test has held the cluster (%s) for %v", name, lockTimeout)
		}
		time.Sleep(pollInterval) // polling the lock, not synchronisation
	}
	t.Cleanup(func() { _ = f.Close() }) // closing releases the lock
}
