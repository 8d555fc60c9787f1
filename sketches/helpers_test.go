package sketches

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// size picks the big size normally and the small one with -short or under the race
// detector.
func size(big, small int) int {
	if testing.Short() || raceEnabled {
		return small
	}
	return big
}

// zipfRanks returns n draws of a Zipf(s = 1.1) distribution over [0, imax], seeded.
func zipfRanks(n int, imax uint64, seed uint64) []uint64 {
	r := rand.New(rand.NewPCG(seed, 1))
	z := rand.NewZipf(r, 1.1, 1, imax)
	out := make([]uint64, n)
	for i := range out {
		out[i] = z.Uint64()
	}
	return out
}

// uniformRanks returns n uniform draws over [0, imax], seeded.
func uniformRanks(n int, imax uint64, seed uint64) []uint64 {
	r := rand.New(rand.NewPCG(seed, 2))
	out := make([]uint64, n)
	for i := range out {
		out[i] = r.Uint64N(imax + 1)
	}
	return out
}

// dataset is a stream of items with their exact counts.
type dataset struct {
	name  string
	items []string
	exact map[string]uint64
}

func newDataset(name string, ranks []uint64) dataset {
	names := map[uint64]string{}
	d := dataset{name: name, items: make([]string, len(ranks)), exact: map[string]uint64{}}
	for i, r := range ranks {
		s, ok := names[r]
		if !ok {
			s = "item-" + strconv.FormatUint(r, 10)
			names[r] = s
		}
		d.items[i] = s
		d.exact[s]++
	}
	return d
}

func datasets(n int) []dataset {
	return []dataset{
		newDataset("zipf", zipfRanks(n, 100_000, 7)),
		newDataset("uniform", uniformRanks(n, 100_000, 7)),
	}
}
