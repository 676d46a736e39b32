package recent

import (
	"testing"
)

func TestMapForgetsTheOldest(t *testing.T) {
	m := NewMap[string, int](3)
	for i, k := range []string{"a", "b", "c"} {
		m.Put(k, i)
	}
	m.Put("b", 10) // an update is not a new key
	if m.Len() != 3 {
		t.Fatalf("len %d", m.Len())
	}
	m.Put("d", 3)
	if m.Has("a") || !m.Has("b") || !m.Has("c") || !m.Has("d") {
		t.Errorf("after d: a %v b %v c %v d %v, want a forgotten", m.Has("a"), m.Has("b"), m.Has("c"), m.Has("d"))
	}
	if v, ok := m.Get("b"); !ok || v != 10 {
		t.Errorf("b = %d, %v", v, ok)
	}
}

// A key deleted and added again is not forgotten when its old slot's turn
// comes: only its new slot counts.
func TestMapDeleteThenPut(t *testing.T) {
	m := NewMap[string, int](2)
	m.Put("a", 1)
	m.Put("b", 2)
	m.Delete("a")
	m.Put("a", 3) // takes the oldest slot (its own, now stale): b stays
	if !m.Has("a") || !m.Has("b") {
		t.Fatalf("a %v b %v, want both", m.Has("a"), m.Has("b"))
	}
	m.Put("c", 4) // the oldest live key is b
	if !m.Has("a") || m.Has("b") || !m.Has("c") {
		t.Errorf("a %v b %v c %v, want b forgotten", m.Has("a"), m.Has("b"), m.Has("c"))
	}
}

func TestMapStaysBounded(t *testing.T) {
	m := NewMap[int, struct{}](100)
	for i := range 10000 {
		m.Put(i, struct{}{})
		if i%7 == 0 {
			m.Delete(i - 3)
		}
		if m.Len() > 100 {
			t.Fatalf("len %d after %d puts", m.Len(), i+1)
		}
	}
	for i := 9900; i < 10000; i++ {
		if i%7 != 4 && !m.Has(i) { // i-3 deleted at each multiple of 7
			t.Errorf("%d forgotten, one of the 100 newest", i)
		}
	}
}

func FuzzMap(f *testing.F) {
	f.Add([]byte{1, 2, 3, 1, 4, 5, 200, 2})
	f.Fuzz(func(t *testing.T, ops []byte) {
		m := NewMap[byte, int](4)
		for i, op := range ops {
			if op >= 128 {
				m.Delete(op - 128)
			} else {
				m.Put(op%16, i)
			}
			if m.Len() > 4 {
				t.Fatalf("len %d", m.Len())
			}
		}
	})
}
