package operator

// Keys calls f with every key that holds state, in no fixed order, until f returns false
// (state queries list a key group's keys with it).
func (s *KeyedState[K]) Keys(f func(K) bool) {
	for k := range s.keys {
		if !f(k) {
			return
		}
	}
}
