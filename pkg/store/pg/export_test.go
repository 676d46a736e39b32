package pg

// MarkUnsure records commit seq of s as one whose outcome s did not learn
// (for tests: a COMMIT lost with its connection cannot be caused at will).
func MarkUnsure(s *Store, seq int64) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.unsure = append(s.unsure, seq)
}
