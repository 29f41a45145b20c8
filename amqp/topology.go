package amqp

import (
	"reflect"
	"slices"
	"sync"

	"github.com/amqproto/amqproto/internal/sansio"
)

// topology records what was declared through a Conn, so that recovery can
// declare it again in the same order: exchanges, queues, then bindings.
// Deletions remove entities and the bindings that named them, and what the
// broker deletes by itself: an auto-delete queue once this connection's
// last consumer of it is gone (see Conn.consumerGone), an auto-delete
// exchange once its last binding is. Consumers are recorded by their
// Channel, which re-registers them.
type topology struct {
	mu        sync.Mutex
	exchanges []*sansio.ExchangeDeclare
	queues    []*recordedQueue
	bindings  []recordedBinding
	renamed   map[string]string // a server-named queue's first name -> its current one
}

type recordedQueue struct {
	decl        sansio.QueueDeclare // Queue holds the current name
	serverNamed bool
}

type recordedBinding struct {
	exchange    bool // an exchange-to-exchange binding
	destination string
	source      string
	key         string
	args        sansio.Table
}

func (b recordedBinding) entity() TopologyEntity {
	kind := EntityQueueBinding
	if b.exchange {
		kind = EntityExchangeBinding
	}
	return TopologyEntity{Kind: kind, Source: b.source, Destination: b.destination, RoutingKey: b.key}
}

func (b recordedBinding) same(o recordedBinding) bool {
	return b.exchange == o.exchange && b.destination == o.destination && b.source == o.source && b.key == o.key &&
		tablesEqual(b.args, o.args)
}

// tablesEqual compares binding arguments; an empty table and none are the
// same binding to the broker.
func tablesEqual(a, b sansio.Table) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}

func (t *topology) exchangeDeclared(m *sansio.ExchangeDeclare) {
	if m.Passive {
		return
	}
	rec := *m
	rec.NoWait = false
	t.mu.Lock()
	defer t.mu.Unlock()
	t.exchanges = slices.DeleteFunc(t.exchanges, func(e *sansio.ExchangeDeclare) bool { return e.Exchange == m.Exchange })
	t.exchanges = append(t.exchanges, &rec)
}

func (t *topology) exchangeDeleted(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.exchangeDeletedLocked(name)
}

func (t *topology) exchangeDeletedLocked(name string) {
	t.exchanges = slices.DeleteFunc(t.exchanges, func(e *sansio.ExchangeDeclare) bool { return e.Exchange == name })
	t.removeBindingsLocked(func(b recordedBinding) bool {
		return b.source == name || (b.exchange && b.destination == name)
	})
}

// removeBindingsLocked drops the bindings that match, then, as the broker
// does, the auto-delete exchanges that lost their last binding with them.
// (Bindings made on other connections may keep such an exchange alive on
// the broker; the record knows only this connection's.)
func (t *topology) removeBindingsLocked(match func(recordedBinding) bool) {
	var sources []string
	t.bindings = slices.DeleteFunc(t.bindings, func(b recordedBinding) bool {
		if match(b) {
			sources = append(sources, b.source)
			return true
		}
		return false
	})
	for _, name := range sources {
		if t.autoDeleteExchangeLocked(name) && !slices.ContainsFunc(t.bindings, func(b recordedBinding) bool { return b.source == name }) {
			t.exchangeDeletedLocked(name)
		}
	}
}

func (t *topology) autoDeleteExchangeLocked(name string) bool {
	return slices.ContainsFunc(t.exchanges, func(e *sansio.ExchangeDeclare) bool { return e.Exchange == name && e.AutoDelete })
}

// anyAutoDeleteQueue reports whether one of names is recorded as an
// auto-delete queue.
func (t *topology) anyAutoDeleteQueue(names []string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.ContainsFunc(t.queues, func(q *recordedQueue) bool { return q.decl.AutoDelete && slices.Contains(names, q.decl.Queue) })
}

// autoDeleteQueue reports whether name is recorded as an auto-delete queue.
func (t *topology) autoDeleteQueue(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.ContainsFunc(t.queues, func(q *recordedQueue) bool { return q.decl.Queue == name && q.decl.AutoDelete })
}

// queueDeclared records a declared queue under the name the broker gave it.
func (t *topology) queueDeclared(m *sansio.QueueDeclare, name string) {
	if m.Passive {
		return
	}
	rec := &recordedQueue{decl: *m, serverNamed: m.Queue == ""}
	rec.decl.Queue = name
	rec.decl.NoWait = false
	t.mu.Lock()
	defer t.mu.Unlock()
	t.queues = slices.DeleteFunc(t.queues, func(q *recordedQueue) bool {
		if q.decl.Queue != name {
			return false
		}
		// Declared again by the name the broker chose: it is still the
		// broker's to name (RabbitMQ refuses to declare amq.* names).
		rec.serverNamed = rec.serverNamed || q.serverNamed
		return true
	})
	t.queues = append(t.queues, rec)
}

func (t *topology) queueDeleted(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.queues = slices.DeleteFunc(t.queues, func(q *recordedQueue) bool { return q.decl.Queue == name })
	t.removeBindingsLocked(func(b recordedBinding) bool { return !b.exchange && b.destination == name })
}

func (t *topology) bound(b recordedBinding) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if slices.ContainsFunc(t.bindings, b.same) {
		return
	}
	t.bindings = append(t.bindings, b)
}

func (t *topology) unbound(b recordedBinding) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeBindingsLocked(b.same)
}

// renameQueue makes the record follow a server-named queue's new name.
func (t *topology) renameQueue(oldName, newName string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.renamed == nil {
		t.renamed = make(map[string]string)
	}
	for first, cur := range t.renamed {
		if cur == oldName {
			t.renamed[first] = newName
		}
	}
	t.renamed[oldName] = newName
	for _, q := range t.queues {
		if q.decl.Queue == oldName {
			q.decl.Queue = newName
		}
	}
	for i := range t.bindings {
		if !t.bindings[i].exchange && t.bindings[i].destination == oldName {
			t.bindings[i].destination = newName
		}
	}
}

// currentName returns the name a queue declared as name has now.
func (t *topology) currentName(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.renamed[name]; ok {
		return cur
	}
	return name
}

// snapshot copies the record for a recovery to walk without the lock.
func (t *topology) snapshot() (exchanges []sansio.ExchangeDeclare, queues []recordedQueue, bindings []recordedBinding) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.exchanges {
		exchanges = append(exchanges, *e)
	}
	for _, q := range t.queues {
		queues = append(queues, *q)
	}
	return exchanges, queues, slices.Clone(t.bindings)
}
