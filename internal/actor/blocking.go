package actor

import "sync"

// blockState is the broker's latest connection.blocked or
// connection.unblocked notification on a connection. Notifications are
// coalesced: only the latest is kept, however many the broker sends and
// whether or not anyone looks, so a broker flooding them costs no memory.
// The loop sets it; any goroutine reads it.
type blockState struct {
	mu    sync.Mutex
	cur   Blocking
	ended bool
	// changed is closed at the next change or at the end; made only when
	// someone asks (see Conn.Blocking), so that unwatched notifications
	// allocate nothing.
	changed chan struct{}
}

// set records b as the latest state; a repeat of the current one changes
// nothing.
func (s *blockState) set(b Blocking) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.cur == b {
		return
	}
	s.cur = b
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// end marks the end of the connection: no change follows.
func (s *blockState) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended = true
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// Blocking returns whether the broker blocks the connection's publishers
// now (connection.blocked, with its reason, until connection.unblocked),
// and a channel closed at the next change or when the connection ends;
// ended reports that it has. A new connection starts unblocked. Safe for
// concurrent use.
func (c *Conn) Blocking() (state Blocking, changed <-chan struct{}, ended bool) {
	s := &c.blocking
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return s.cur, closedDone, true
	}
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.cur, s.changed, false
}
