//go:build !unix

package clustertest

import "testing"

// lockCluster does nothing where flock is missing: tests that share the
// cluster must then not run at the same time.
func (c *Cluster) lockCluster(t testing.TB) {}
