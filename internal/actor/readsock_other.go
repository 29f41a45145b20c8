//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package actor

import "net"

// sockReader is not available here: the reader holds a buffer while it
// waits.
type sockReader struct{}

func newSockReader(net.Conn, *recycler) *sockReader { return nil }

func (*sockReader) read(uint8) (*readBuf, error) { return nil, nil }
