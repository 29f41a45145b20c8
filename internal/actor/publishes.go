package actor

// publishes holds a channel's publishes awaiting a confirm, indexed by
// sequence number: items[head+i] has number base+i. Confirms mostly come in
// order, so settling advances head; the array is reused, not reallocated,
// once everything is settled.
type publishes struct {
	items []*Outcome
	head  int
	base  uint64
}

func (p *publishes) len() int { return len(p.items) - p.head }

// add records pub (nil for a publish nobody waits on) as number seq, which
// must follow the last one added.
func (p *publishes) add(seq uint64, pub *Outcome) {
	switch {
	case p.len() == 0:
		p.items, p.head, p.base = p.items[:0], 0, seq
	case p.head >= 1024 && p.head*2 >= len(p.items):
		n := copy(p.items, p.items[p.head:])
		clear(p.items[n:])
		p.items, p.head = p.items[:n], 0
		p.base = seq - uint64(n)
	}
	p.items = append(p.items, pub)
}

// take removes and returns number seq, or nil.
func (p *publishes) take(seq uint64) *Outcome {
	i := seq - p.base
	if seq < p.base || i >= uint64(p.len()) {
		return nil
	}
	pub := p.items[p.head+int(i)]
	p.items[p.head+int(i)] = nil
	for p.len() > 0 && p.items[p.head] == nil {
		p.head++
		p.base++
	}
	return pub
}

// get returns number seq without removing it, or nil.
func (p *publishes) get(seq uint64) *Outcome {
	i := seq - p.base
	if seq < p.base || i >= uint64(p.len()) {
		return nil
	}
	return p.items[p.head+int(i)]
}

// each calls f for every publish still waiting, and forgets them all.
func (p *publishes) drain(f func(*Outcome)) {
	for _, pub := range p.items[p.head:] {
		if pub != nil {
			f(pub)
		}
	}
	clear(p.items)
	p.items, p.head = p.items[:0], 0
}
