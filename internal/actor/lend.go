package actor

import (
	"bytes"
	"context"
	"slices"
	"sync"

	"github.com/amqproto/amqproto/internal/sansio"
)

// lendMin is the body size from which Publish lends the caller's body to
// the connection, which writes it from where it is, instead of copying it
// into a frame buffer. The publisher then waits until the body is written,
// which costs it two goroutine wake-ups and its place in the batching of
// writes; from this size the copy (and the buffer it needs) costs more.
const lendMin = 256 << 10

// loan is a publish's body lent to the connection: Publish waits until
// the connection no longer refers to the caller's memory. When the
// publisher's context ends first, it copies what is not written yet into
// memory of its own, points the write at the copy (see takeBack) and
// returns: the publish still goes out, since a publish the core has
// numbered cannot be withdrawn without breaking the frame stream.
//
// head and chunk do not change; the fields after them are guarded by
// Conn.lendMu, which the writes that refer to a lent body hold around each
// system call (see vecWriter): so a publisher giving up never races a
// write using its memory.
type loan struct {
	head  int // the method and header frames' bytes at the start of the framing
	chunk int // body bytes per body frame

	body  []byte      // the caller's body, or the copy of a publisher that gave up
	batch *writeBatch // the write its vectors are in, once it started
	lo    int         // its vectors, batch.bufs[lo:hi]
	hi    int
	left  bool // its publisher gave up and returned, with a copy
	done  bool // the connection no longer refers to body

	back chan struct{} // capacity 1: receives once done is set
}

var loans = sync.Pool{New: func() any { return &loan{back: make(chan struct{}, 1)} }}

// putLoan pools ln, which keeps neither the caller's body nor the
// connection's write alive there.
func putLoan(ln *loan) {
	ln.body, ln.batch = nil, nil
	loans.Put(ln)
}

func newLoan(body []byte, head int, frameMax uint32) *loan {
	ln := loans.Get().(*loan)
	*ln = loan{head: head, chunk: sansio.BodyChunk(len(body), frameMax), body: body, back: ln.back}
	return ln
}

// awaitLoan waits until the connection has written ln's body, or copied
// it, or dropped it. When ctx ends first, the publisher takes its body
// back: what is left of it to write is copied, and the write continues
// from the copy.
func (c *Conn) awaitLoan(ctx context.Context, ln *loan) {
	select {
	case <-ln.back:
		putLoan(ln)
		return
	case <-ctx.Done():
	}
	c.lendMu.Lock()
	if ln.done {
		c.lendMu.Unlock()
		<-ln.back // sent right after done was set
		putLoan(ln)
		return
	}
	ln.takeBack()
	c.lendMu.Unlock()
	// The loop still refers to ln, which it repays later: not pooled.
}

// takeBack copies what is still to be written of ln's body and points the
// write at the copy. Called with Conn.lendMu held.
func (ln *loan) takeBack() {
	ln.left = true
	if ln.batch == nil {
		// Not being written yet: the loop points the vectors it may have
		// queued at the copy when the write starts (see loop.lend).
		ln.body = bytes.Clone(ln.body)
		return
	}
	ln.batch.copyRest(ln.lo, ln.hi)
}

// copyRest copies what is left to write of bufs[lo:hi] into one new buffer
// and points them at it. Called with Conn.lendMu held.
func (b *writeBatch) copyRest(lo, hi int) {
	from := max(lo, b.cur)
	if from >= hi {
		return // written; the rest of the batch is not
	}
	n := 0
	for _, v := range b.bufs[from:hi] {
		n += len(v)
	}
	rest := make([]byte, 0, n)
	for i := from; i < hi; i++ {
		at := len(rest)
		rest = append(rest, b.bufs[i]...)
		b.bufs[i] = rest[at:]
	}
}

// repay tells the publishers of lns that the connection no longer refers
// to their bodies: written, copied, or dropped. Each loan is repaid once.
func (c *Conn) repay(lns ...*loan) {
	if !slices.ContainsFunc(lns, func(ln *loan) bool { return ln != nil }) {
		return // most writes lend nothing: no lock
	}
	c.lendMu.Lock()
	for _, ln := range lns {
		if ln != nil {
			ln.done = true
		}
	}
	c.lendMu.Unlock()
	for _, ln := range lns {
		if ln != nil {
			ln.back <- struct{}{} // never blocks: capacity 1, one repay; ln may be reused after
		}
	}
}

// queueLoan adds a lent publish to the next write: its framing from its
// own buffer, its body from the caller's memory, frame by frame.
func (l *loop) queueLoan(req publishReq) {
	l.cutCore()
	ln, framing, b := req.loan, *req.frames, l.next
	l.c.lendMu.Lock()
	ln.lo = len(b.bufs)
	at := ln.head + 7 // the method and header frames, the first body frame's header
	b.bufs = append(b.bufs, framing[:at])
	for body := ln.body; len(body) > 0; {
		n := min(ln.chunk, len(body))
		next := min(at+8, len(framing)) // this frame's end, the next one's header
		b.bufs = append(b.bufs, body[:n], framing[at:next])
		body, at = body[n:], next
	}
	ln.hi = len(b.bufs)
	l.nextBytes += len(framing) + len(ln.body)
	l.c.lendMu.Unlock()
	b.pooled = append(b.pooled, req.frames)
	b.loans = append(b.loans, ln)
}

// lend marks the lent bodies of b as being written, before its first
// system call: from then on a publisher giving up copies what is left of
// its body in b. The vectors of one that gave up before point at its copy.
func (l *loop) lend(b *writeBatch) {
	if len(b.loans) == 0 {
		return
	}
	l.c.lendMu.Lock()
	defer l.c.lendMu.Unlock()
	for _, ln := range b.loans {
		if ln.left {
			ln.repoint(b.bufs[ln.lo:ln.hi])
		}
		ln.batch = b
	}
}

// repoint points the body vectors among v (every other one, from the
// second) at ln.body. Called with Conn.lendMu held, before any is written.
func (ln *loan) repoint(v [][]byte) {
	for i, at := 1, 0; i < len(v); i, at = i+2, at+ln.chunk {
		v[i] = ln.body[at : at+len(v[i])]
	}
}

// unlend puts a lent body into req's frames, a copy, for a publish the
// core will queue behind no-wait methods (and copy itself) rather than let
// the loop write it from the caller's memory.
func (l *loop) unlend(req *publishReq) {
	c, ln := l.c, req.loan
	c.lendMu.Lock()
	full := c.getFrames(len(*req.frames) + len(ln.body))
	*full = append(*full, (*req.frames)[:ln.head]...)
	*full = sansio.AppendBodyFrames(*full, req.ch.id, ln.body, c.tuning.FrameMax)
	c.lendMu.Unlock()
	c.putFrames(req.frames)
	req.frames, req.loan = full, nil
	c.repay(ln)
}
