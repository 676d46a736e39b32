// Package recent holds the agent's bounded memories: a map that keeps the
// most recently added keys and forgets the oldest past a fixed count, so
// that whatever a node's kernel or runtime throws at the agent (a storm of
// kills, of PIDs, of container IDs), what it remembers stays bounded.
package recent

// Map is a map bounded to a number of keys: adding a new key past the
// bound forgets the oldest added key. Updating a key's value does not make
// it younger. The zero Map is not usable; make one with NewMap. A Map is
// not safe for concurrent use.
type Map[K comparable, V any] struct {
	m     map[K]entry[V]
	ring  []K // keys in the order added; a slot is stale when its key was deleted or re-added
	next  int // the oldest slot, once the ring is full
	limit int
}

type entry[V any] struct {
	v    V
	slot int
}

// NewMap returns a Map that holds at most limit keys (at least 1).
func NewMap[K comparable, V any](limit int) *Map[K, V] {
	limit = max(limit, 1)
	return &Map[K, V]{m: make(map[K]entry[V]), limit: limit}
}

// Get returns the value of k.
func (b *Map[K, V]) Get(k K) (V, bool) {
	e, ok := b.m[k]
	return e.v, ok
}

// Has tells whether k is held.
func (b *Map[K, V]) Has(k K) bool {
	_, ok := b.m[k]
	return ok
}

// Put sets k's value; a new key past the bound forgets the oldest.
func (b *Map[K, V]) Put(k K, v V) {
	if e, ok := b.m[k]; ok {
		e.v = v
		b.m[k] = e
		return
	}
	if len(b.ring) < b.limit {
		b.ring = append(b.ring, k)
		b.m[k] = entry[V]{v: v, slot: len(b.ring) - 1}
		return
	}
	slot := b.next
	if old := b.ring[slot]; b.m[old].slot == slot {
		delete(b.m, old)
	}
	b.ring[slot] = k
	b.m[k] = entry[V]{v: v, slot: slot}
	b.next = (b.next + 1) % b.limit
}

// Delete forgets k.
func (b *Map[K, V]) Delete(k K) { delete(b.m, k) }

// Len is how many keys are held.
func (b *Map[K, V]) Len() int { return len(b.m) }
