// Package faultproxy is a TCP proxy for tests that breaks the network on
// command: it cuts connections, blackholes them, delays them, refuses new
// ones, and switches the address new ones go to, so that a test can make a
// client lose its broker at a moment it chooses, without root, iptables or
// a broker restart.
//
// A Proxy listens on 127.0.0.1 at a port of its own (Addr) and forwards each
// connection it accepts to its target. Every control takes effect for the
// connections it names by the time it returns, except Blackhole and Delay,
// which act between chunks: a chunk already being written when they are
// called is still delivered.
//
// Goroutines, their owner and their exit:
//   - the accept loop, owned by the Proxy: ends when Close closes the
//     listener;
//   - per connection, a starter that dials the target and then copies
//     target→client, and a copier client→target; both are owned by the
//     connection's link and end when it closes: when either peer closes or
//     fails, or when Cut or Close closes it.
//
// Close waits for all of them.
package faultproxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// dialTimeout bounds one dial of the target; a target that does not answer
// in time is treated as down (the client's connection is reset).
const dialTimeout = 5 * time.Second

// chunkSize is the largest read forwarded as one chunk (the unit that Delay
// and Blackhole act on).
const chunkSize = 32 << 10

// Proxy forwards TCP connections to a target address and injects faults.
// Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	ctx    context.Context // cancelled by Close: ends dials in progress
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the proxy started

	mu        sync.Mutex // guards everything below
	target    string
	delay     time.Duration
	refuse    bool
	blackhole bool
	resume    chan struct{} // closed when the current blackhole lifts
	links     map[*link]struct{}
	accepted  int
	refused   int
	closed    bool
}

// New starts a proxy on 127.0.0.1 (a free port) forwarding to target
// ("host:port"). Call Close when done.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		target: target,
		links:  make(map[*link]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address clients dial ("127.0.0.1:port").
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget makes new connections go to addr; connections already
// forwarded stay where they are (Cut them to move every client). This is
// how a test stages a failover to another node.
func (p *Proxy) SetTarget(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = addr
}

// Delay holds each chunk for d before forwarding it, in both directions, on
// every connection (0 switches it off).
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// Blackhole(true) stops forwarding in both directions on every connection,
// current and new, while keeping the sockets open: the peers see silence,
// as with a dead link, and only a heartbeat can tell. The proxy stops
// reading once it holds one chunk per direction, so the senders' socket
// buffers fill as they would. Blackhole(false) delivers what was held and
// forwards again, as TCP would after the link came back.
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case on && !p.blackhole:
		p.resume = make(chan struct{})
	case !on && p.blackhole:
		close(p.resume)
	}
	p.blackhole = on
}

// Partition cuts every current connection off for good without closing
// anything, as a network partition that never heals for them: nothing
// crosses any more, not even a peer's close, so each side learns of it
// only from its own heartbeat. New connections are forwarded as usual
// (the client reached the broker by another route). Close or Cut ends the
// partitioned connections.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		l.partitioned.Store(true)
	}
}

// Refuse(true) makes the proxy reset every new connection as soon as it
// accepts it, without dialing the target, as a node whose port is closed
// would (the client's dial may succeed; its first read fails).
// Connections already forwarded are not affected.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = on
}

// Cut closes every current connection on both sides with a TCP reset
// (SO_LINGER 0), as a crashed peer or a middlebox would. New connections
// are forwarded as usual.
func (p *Proxy) Cut() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close(true)
	}
}

// Accepted is the number of connections forwarded (or being forwarded) to
// a target since New, refused ones excluded.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Refused is the number of connections reset by Refuse since New.
func (p *Proxy) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// Open is the number of connections currently forwarded.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Close stops accepting, resets every connection and waits until every
// goroutine of the proxy has returned.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.cancel()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient failure (e.g. EMFILE): keep serving
		}
		p.admit(c)
	}
}

// admit registers a link for the accepted client connection and starts
// its goroutines, or resets the connection when refusing or closed.
func (p *Proxy) admit(client net.Conn) {
	p.mu.Lock()
	if p.refuse || p.closed {
		if p.refuse {
			p.refused++
		}
		p.mu.Unlock()
		reset(client)
		return
	}
	p.accepted++
	l := &link{p: p, client: client, done: make(chan struct{})}
	p.links[l] = struct{}{}
	target := p.target
	p.wg.Add(1)
	p.mu.Unlock()
	go l.run(target)
}

// hold waits until a chunk may be forwarded: no blackhole, and the delay
// spent. It reports false when the link closed meanwhile.
func (p *Proxy) hold(done <-chan struct{}) bool {
	p.mu.Lock()
	delay := p.delay
	var resume chan struct{}
	if p.blackhole {
		resume = p.resume
	}
	p.mu.Unlock()
	if resume != nil {
		select {
		case <-resume:
		case <-done:
			return false
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-done:
			return false
		}
	}
	// A blackhole that started during the delay holds this chunk too.
	p.mu.Lock()
	again := p.blackhole
	p.mu.Unlock()
	if again {
		return p.hold(done)
	}
	return true
}

// link is one proxied connection: the client's socket and the target's.
type link struct {
	p      *Proxy
	client net.Conn
	done   chan struct{} // closed by close

	once        sync.Once
	mu          sync.Mutex
	server      net.Conn // nil until the dial succeeds; guarded by mu
	partitioned atomic.Bool
}

// run dials target, then copies client→target on a second goroutine and
// target→client on this one, until the link closes.
func (l *link) run(target string) {
	defer l.p.wg.Done()
	ctx, cancel := context.WithTimeout(l.p.ctx, dialTimeout)
	var d net.Dialer
	server, err := d.DialContext(ctx, "tcp", target)
	cancel()
	if err != nil {
		l.close(true)
		return
	}
	l.mu.Lock()
	select {
	case <-l.done: // cut while dialing
		l.mu.Unlock()
		reset(server)
		return
	default:
	}
	l.server = server
	l.mu.Unlock()

	l.p.wg.Add(1)
	go func() {
		defer l.p.wg.Done()
		l.copy(server, l.client)
	}()
	l.copy(l.client, server)
}

// copy forwards src to dst chunk by chunk, each one cleared by hold, and
// closes the link when either side fails or ends.
func (l *link) copy(dst, src net.Conn) {
	defer l.close(false)
	buf := make([]byte, chunkSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if l.cutOff() || !l.p.hold(l.done) || l.cutOff() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			l.cutOff() // the close does not cross a partition either
			return
		}
	}
}

// cutOff reports whether the link is partitioned, once it has ended: a
// partitioned link forwards nothing more and closes nothing, and its
// sender's socket buffers fill as they would.
func (l *link) cutOff() bool {
	if !l.partitioned.Load() {
		return false
	}
	<-l.done
	return true
}

// close closes both sockets, with a reset when rst is set, and forgets the
// link. Only the first call acts.
func (l *link) close(rst bool) {
	l.once.Do(func() {
		// Forgotten first, so that Open no longer counts a link whose
		// peer may already see its end.
		l.p.mu.Lock()
		delete(l.p.links, l)
		l.p.mu.Unlock()
		l.mu.Lock()
		close(l.done)
		server := l.server
		l.mu.Unlock()
		for _, c := range []net.Conn{l.client, server} {
			if c == nil {
				continue
			}
			if rst {
				reset(c)
			} else {
				_ = c.Close()
			}
		}
	})
}

// reset closes c with a TCP RST instead of a FIN where it can.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
