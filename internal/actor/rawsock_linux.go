//go:build linux && !386

package actor

import (
	"syscall"
	"unsafe"
)

// sendNoWait and recvNoWait make the socket calls of tryWriter and
// sockReader. They never block (MSG_DONTWAIT), so they are made as raw
// system calls, without telling the scheduler: a system call it is told
// of wakes the runtime's monitor thread (sysmon) when every P was idle,
// which is the common case at a low message rate, and lets that thread
// hand the P of a call lasting a few tens of microseconds (a send on a
// loopback socket delivers the segment to the peer in the same call) to
// another thread, waking it. Each costs a context switch per message.
func sendNoWait(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func recvNoWait(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
