//go:build !race

package main

// raceEnabled is true under the race detector, whose slowdown the big cases avoid.
const raceEnabled = false
