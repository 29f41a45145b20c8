// Package testenv holds the one rule for tests that need the environment
// `make test` sets up (a running RabbitMQ, its URLs, installed peers): they
// skip when run by hand without it, and fail when CI is set, where a skip
// would hide that nothing was tested.
package testenv

import (
	"os"
	"testing"
)

// Get returns the environment variable name, or skips the test (fails it
// in CI) when it is not set.
func Get(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Missing(t, name+" is not set", "run `make test` to start a RabbitMQ and run against it")
	}
	return v
}

// Missing skips the test (fails it in CI) because what is missing, saying
// how to get it.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; CI must run every test (%s)", what, how)
	}
	t.Skipf("%s: %s", what, how)
}
