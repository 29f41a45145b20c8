package actor

import (
	"net"
	"sync"
)

// Read buffers are sized to the traffic and shared by every connection of
// the process, so that an idle connection holds none: bulk traffic reads in
// chunks of up to maxReadSize, and a heartbeat every minute does not keep
// 64 KiB per connection. A reader starts at the smallest size, doubles the
// size while reads fill its buffer (more was waiting), and halves it while
// they use under a quarter. The loop returns each buffer to the shared pool
// once the core has taken its bytes.
const (
	minReadShift = 12 // 4 KiB
	maxReadShift = 16 // 64 KiB
	maxReadSize  = 1 << maxReadShift
)

// readBuf is one pooled read buffer and the bytes read into it.
type readBuf struct {
	b     []byte // the whole buffer, of a size class
	n     int    // bytes read into b
	class uint8  // index into readPools
}

// readPools holds the free buffers of each size class, from 4 KiB to 64
// KiB. A sync.Pool lets the garbage collector take back the buffers of
// connections that went idle.
var readPools [maxReadShift - minReadShift + 1]sync.Pool

func getReadBuf(class uint8) *readBuf {
	if rb, ok := readPools[class].Get().(*readBuf); ok {
		return rb
	}
	return &readBuf{b: make([]byte, 1<<(minReadShift+class)), class: class}
}

func putReadBuf(rb *readBuf) {
	rb.n = 0
	readPools[rb.class].Put(rb)
}

// readResult is what the reader hands the loop: a buffer of bytes read, or,
// last, the error that ended the reading.
type readResult struct {
	rb  *readBuf
	err error
}

// readSizer chooses the size class of a reader's next buffer from how full
// its reads came back.
type readSizer struct {
	class uint8
}

func (s *readSizer) next(n, size int) {
	switch {
	case n == size && s.class < maxReadShift-minReadShift:
		s.class++
	case n < size/4 && s.class > 0:
		s.class--
	}
}

// reader only reads: it hands each chunk to the loop, which returns the
// buffer to the pool. Where the socket allows (TCP and Unix sockets), it
// waits for data without holding a buffer; elsewhere (TLS, pipes) it holds
// one of the current size during the read.
func (l *loop) reader() {
	defer func() { l.ioDone <- struct{}{} }()
	read := blockingReader(l.c.nc)
	if sr := newSockReader(l.c.nc); sr != nil {
		read = sr.read
	}
	var size readSizer
	for {
		rb, err := read(size.class)
		if rb != nil {
			size.next(rb.n, len(rb.b))
			select {
			case l.readCh <- readResult{rb: rb}:
			case <-l.stop:
				putReadBuf(rb)
				return
			}
		}
		if err != nil {
			select {
			case l.readCh <- readResult{err: err}:
			case <-l.stop:
			}
			return
		}
	}
}

// readFunc reads once into a buffer of the given class. It returns the
// buffer when it read something, and the error that ends the reading.
type readFunc func(class uint8) (*readBuf, error)

// blockingReader reads with nc.Read, holding a buffer while it waits.
func blockingReader(nc net.Conn) readFunc {
	return func(class uint8) (*readBuf, error) {
		rb := getReadBuf(class)
		n, err := nc.Read(rb.b)
		if n <= 0 {
			putReadBuf(rb)
			return nil, err
		}
		rb.n = n
		return rb, err
	}
}
