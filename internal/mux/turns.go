package mux

// The order in which a Queue's items leave it (the round-robin rule: see
// Queue). The items are a FIFO of groups. An ordered group is one lane of
// items without a Turn, in push order; a turns group has a lane per
// client, the clients with items queued in turn order (the front lane's
// turn is next; a lane served goes to the back if it has more). A pushed
// item joins the last group if that is of its kind, else starts a new
// one: so everything pushed before an item without a Turn leaves before
// it, and everything pushed after it leaves after it, while within a
// turns group the clients take turns.
//
// add, takeNext, putBack and dropAll are the only changes of a queue's items
// (and of its count and bytes); they are called with q.mu held.

// lane is one client's items in a turns group, or an ordered group's items.
type lane struct {
	turn  any // the client (nil in an ordered group)
	items fifo[Item]
}

// group is a run of the queue's order: ordered, or clients taking turns.
type group struct {
	ordered bool
	lanes   fifo[*lane] // never holds an empty lane
}

// spareMax bounds the emptied lanes and groups a queue keeps for reuse.
const spareMax = 8

// empty reports whether nothing is queued.
func (q *Queue) empty() bool { return q.n == 0 }

// add appends it to the queue's order.
func (q *Queue) add(it Item) {
	ordered := it.Turn == nil
	if q.groups.len() == 0 || q.groups.back().ordered != ordered {
		g := reuse(&q.spareGroups)
		g.ordered = ordered
		q.groups.push(g)
	}
	g := q.groups.back()
	var l *lane
	for _, x := range g.lanes.all() {
		if x.turn == it.Turn {
			l = x
			break
		}
	}
	if l == nil { // it.Turn's first item in this group: last in the turn
		l = reuse(&q.spareLanes)
		l.turn = it.Turn
		g.lanes.push(l)
	}
	l.items.push(it)
	q.n++
	q.bytes += int64(len(it.Body))
}

// nextLen returns the body length of the item whose turn is next. The
// queue is not empty.
func (q *Queue) nextLen() int { return len(q.groups.front().lanes.front().items.front().Body) }

// takeNext removes the item whose turn is next and passes the turn on.
// The queue is not empty.
func (q *Queue) takeNext() Item {
	g := q.groups.front()
	l := g.lanes.pop()
	it := l.items.pop()
	if l.items.len() > 0 {
		g.lanes.push(l) // its next item waits for the others' turns
	} else {
		l.turn = nil
		keep(&q.spareLanes, l)
		if g.lanes.len() == 0 {
			keep(&q.spareGroups, q.groups.pop())
		}
	}
	q.n--
	q.bytes -= int64(len(it.Body))
	return it
}

// putBack puts items at the front of the order, to leave first, in
// their order (a drainer's rest: the first may be partly written).
func (q *Queue) putBack(items []Item) {
	l := reuse(&q.spareLanes)
	for _, it := range items {
		l.items.push(it)
		q.n++
		q.bytes += int64(len(it.Body))
	}
	g := reuse(&q.spareGroups)
	g.ordered = true
	g.lanes.push(l)
	q.groups.pushFront(g)
}

// dropAll empties the queue and returns what it held.
func (q *Queue) dropAll() []Item {
	var all []Item
	for _, g := range q.groups.all() {
		for _, l := range g.lanes.all() {
			all = append(all, l.items.all()...)
		}
	}
	q.groups, q.n, q.bytes = fifo[*group]{}, 0, 0
	return all
}

// reuse returns a kept value from spare, else a new one (see keep).
func reuse[T any](spare *[]*T) *T {
	if k := len(*spare); k > 0 {
		v := (*spare)[k-1]
		*spare = (*spare)[:k-1]
		return v
	}
	return new(T)
}

// keep keeps an emptied lane or group for reuse, so a queue that empties
// after every message (the direct-write path) allocates nothing per
// message.
func keep[T any](spare *[]*T, v *T) {
	if len(*spare) < spareMax {
		*spare = append(*spare, v)
	}
}

// fifo is a slice used as a FIFO: push at the back, pop at the front.
type fifo[T any] struct {
	s    []T
	head int
}

func (f *fifo[T]) len() int { return len(f.s) - f.head }
func (f *fifo[T]) all() []T { return f.s[f.head:] }
func (f *fifo[T]) push(v T) { f.s = append(f.s, v) }
func (f *fifo[T]) front() T { return f.s[f.head] }
func (f *fifo[T]) back() T  { return f.s[len(f.s)-1] }

// pushFront puts v before the others (rare: it copies).
func (f *fifo[T]) pushFront(v T) {
	f.s = append([]T{v}, f.s[f.head:]...)
	f.head = 0
}

// pop removes the front value; the slice's room is reused once it is
// empty, and compacted when the popped part is the larger.
func (f *fifo[T]) pop() T {
	v := f.s[f.head]
	var zero T
	f.s[f.head] = zero
	f.head++
	if f.head == len(f.s) {
		f.s, f.head = f.s[:0], 0
	} else if f.head > 1024 && f.head*2 > len(f.s) {
		f.s = append([]T(nil), f.s[f.head:]...)
		f.head = 0
	}
	return v
}
