package sansio

// unconfirmed holds a channel's publishes awaiting a confirm, by sequence
// number: refs[head+i] is the driver's ref for number base+i, nil once
// settled. Numbers are given out consecutively and confirms mostly come in
// order, so settling advances head; the array is reused, not reallocated,
// once everything is settled.
type unconfirmed struct {
	refs []any
	head int
	base uint64
	n    int // not settled
}

// noRef stands for a nil ref, so that nil can mean settled. A zero-size
// value: storing it in an interface does not allocate.
type noRef struct{}

func (u *unconfirmed) len() int { return u.n }

// add records ref as number seq, which follows the last one added.
func (u *unconfirmed) add(seq uint64, ref any) {
	if ref == nil {
		ref = noRef{}
	}
	switch {
	case u.n == 0:
		clear(u.refs)
		u.refs, u.head, u.base = u.refs[:0], 0, seq
	case u.head >= 1024 && u.head*2 >= len(u.refs):
		k := copy(u.refs, u.refs[u.head:])
		clear(u.refs[k:])
		u.refs, u.head = u.refs[:k], 0
		u.base = seq - uint64(k)
	}
	u.refs = append(u.refs, ref)
	u.n++
}

// index returns where number seq is, if it is not settled.
func (u *unconfirmed) index(seq uint64) (int, bool) {
	if seq < u.base || seq-u.base >= uint64(len(u.refs)-u.head) {
		return 0, false
	}
	i := u.head + int(seq-u.base)
	return i, u.refs[i] != nil
}

// get returns the ref of number seq and whether it awaits its confirm.
func (u *unconfirmed) get(seq uint64) (any, bool) {
	i, ok := u.index(seq)
	if !ok {
		return nil, false
	}
	return refOf(u.refs[i]), true
}

// take settles number seq and returns its ref, if it was not settled.
func (u *unconfirmed) take(seq uint64) (any, bool) {
	i, ok := u.index(seq)
	if !ok {
		return nil, false
	}
	ref := refOf(u.refs[i])
	u.refs[i] = nil
	u.n--
	for u.head < len(u.refs) && u.refs[u.head] == nil {
		u.head++
		u.base++
	}
	return ref, true
}

// takeUpTo settles every number up to seq (all of them when seq is 0, the
// spec's "all outstanding"), calling f for each in order.
func (u *unconfirmed) takeUpTo(seq uint64, f func(seq uint64, ref any)) {
	for u.n > 0 && (seq == 0 || u.base <= seq) {
		s := u.base
		ref, _ := u.take(s) // the head is never settled
		f(s, ref)
	}
}

func refOf(v any) any {
	if _, ok := v.(noRef); ok {
		return nil
	}
	return v
}
