//go:build race

package sketches

// raceEnabled is true under the race detector, whose slowdown the big cases avoid.
const raceEnabled = true
