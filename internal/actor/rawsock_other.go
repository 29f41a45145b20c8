//go:build darwin || freebsd || netbsd || openbsd || dragonfly || (linux && 386)

package actor

import "syscall"

// sendNoWait and recvNoWait make the socket calls of tryWriter and
// sockReader, which never block (MSG_DONTWAIT); see rawsock_linux.go.
func sendNoWait(fd int, b []byte) (int, error) {
	return syscall.SendmsgN(fd, b, nil, nil, syscall.MSG_DONTWAIT)
}

func recvNoWait(fd int, b []byte) (int, error) {
	n, _, err := syscall.Recvfrom(fd, b, syscall.MSG_DONTWAIT)
	return n, err
}
