//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package actor

// tryWriteSupported says whether newTryWriter can return a tryWriter here.
const tryWriteSupported = true
