package actor

import (
	"net"
	"sync"
	"sync/atomic"
)

// Read buffers are sized to the traffic and shared by every connection of
// the process, so that an idle connection holds none: bulk traffic reads in
// chunks of up to maxReadSize, and a heartbeat every minute does not keep
// 64 KiB per connection. A reader starts at the smallest size, doubles the
// size while reads fill its buffer (more was waiting), and halves it while
// they use under a quarter. The loop returns each buffer to the shared pool
// (or straight to a busy reader, see recycler) once the core has taken its
// bytes.
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
var readPools [readClasses]sync.Pool

const readClasses = maxReadShift - minReadShift + 1

// readSpares keeps a few free buffers of each class out of the garbage
// collector's reach, in front of readPools: every collection empties a
// sync.Pool, and bulk traffic of large messages runs one every few
// messages; refilling the pool allocates new buffers and the pool's own
// per-P arrays. They hold at most sparesPerClass buffers per class, under
// 500 KiB for the process whatever its number of connections.
var readSpares [readClasses]struct {
	mu   sync.Mutex
	free []*readBuf
}

const sparesPerClass = 4

func getReadBuf(class uint8) *readBuf {
	sp := &readSpares[class]
	sp.mu.Lock()
	if n := len(sp.free); n > 0 {
		rb := sp.free[n-1]
		sp.free[n-1] = nil
		sp.free = sp.free[:n-1]
		sp.mu.Unlock()
		return rb
	}
	sp.mu.Unlock()
	if rb, ok := readPools[class].Get().(*readBuf); ok {
		return rb
	}
	return &readBuf{b: make([]byte, 1<<(minReadShift+class)), class: class}
}

func putReadBuf(rb *readBuf) {
	rb.n = 0
	sp := &readSpares[rb.class]
	sp.mu.Lock()
	if len(sp.free) < sparesPerClass {
		sp.free = append(sp.free, rb)
		sp.mu.Unlock()
		return
	}
	sp.mu.Unlock()
	readPools[rb.class].Put(rb)
}

// readResult is what the reader hands the loop: a buffer of bytes read, or,
// last, the error that ended the reading.
type readResult struct {
	rb  *readBuf
	err error
}

// readerWaiting marks the recycling slot of a reader that waits for its
// socket.
var readerWaiting = new(readBuf)

// recycler hands read buffers from the loop straight back to its reader
// while the reader is busy. Through the shared pool alone, buffers put on
// the loop's P and taken on the reader's make the pool add and drop chain
// segments: an allocation every few reads under bulk traffic. While the
// reader waits for its socket the slot holds readerWaiting, and the loop
// returns buffers to the pool: an idle connection holds none.
type recycler struct {
	slot atomic.Pointer[readBuf]
}

// give takes back a buffer the loop is done with.
func (r *recycler) give(rb *readBuf) {
	rb.n = 0
	if !r.slot.CompareAndSwap(nil, rb) {
		putReadBuf(rb)
	}
}

// get returns a buffer of the class for the reader, the one given back if
// it has that class.
func (r *recycler) get(class uint8) *readBuf {
	if rb := r.slot.Swap(nil); rb != nil && rb != readerWaiting {
		if rb.class == class {
			return rb
		}
		putReadBuf(rb)
	}
	return getReadBuf(class)
}

// wait is called by the reader before it waits for its socket: from then
// until its next get, buffers go back to the pool.
func (r *recycler) wait() {
	if rb := r.slot.Swap(readerWaiting); rb != nil && rb != readerWaiting {
		putReadBuf(rb)
	}
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
// buffer to the pool or, for a sockReader, to its recycler. Where the socket allows (TCP and Unix sockets), it
// waits for data without holding a buffer; elsewhere (TLS, pipes) it holds
// one of the current size during the read.
func (l *loop) reader() {
	defer func() { l.ioDone <- struct{}{} }()
	read := blockingReader(l.c.nc)
	if l.sock != nil {
		read = l.sock.read
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
