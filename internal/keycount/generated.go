package keycount

import (
	"fmt"

	"github.com/eddyflow/eddy/stream"
)

// Generated is the demo's generated input: n records, the key of record i one of keys keys,
// chosen by a hash of i. Every node of a cluster generates the same input, so none needs a
// file the others can read; its splits rewind, so it takes part in checkpoints.
func Generated(n int64, keys int) stream.Source[Input] {
	return stream.Generate(n, func(i int64) Input { return Input{Key: generatedKey(i, keys)} })
}

// GeneratedCounts returns how many records of each key Generated(n, keys) holds.
func GeneratedCounts(n int64, keys int) map[string]int {
	want := map[string]int{}
	for i := range n {
		want[generatedKey(i, keys)]++
	}
	return want
}

// generatedKey returns the key of record i: "key-K", K = splitmix64(i) mod keys.
func generatedKey(i int64, keys int) string {
	z := uint64(i) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return fmt.Sprintf("key-%d", z%uint64(keys))
}
