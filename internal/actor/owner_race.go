//go:build race

package actor

import (
	"bytes"
	"runtime"
	"strconv"
)

// owner is the goroutine that owns some state. In race-enabled builds,
// which the tests use, check panics when another goroutine touches that
// state, as x/net http2's serveG does; other builds compile it away (see
// owner_norace.go).
type owner struct{ id uint64 }

// claim makes the calling goroutine the owner.
func (o *owner) claim() { o.id = goroutineID() }

// check panics unless the calling goroutine is the owner, or there is none
// yet.
func (o *owner) check() {
	if o.id != 0 && goroutineID() != o.id {
		panic("actor: loop-owned state used outside the loop goroutine")
	}
}

// goroutineID parses the calling goroutine's number from its stack trace
// ("goroutine 18 [running]:"): slow, and only for checks.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	b = b[:bytes.IndexByte(b, ' ')]
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic("actor: cannot parse the goroutine id: " + err.Error())
	}
	return id
}
