package features_test

import (
	"fmt"
	"time"

	"github.com/eddyflow/eddy/stream/features"
)

func ExampleMoments() {
	var m features.Moments
	for _, x := range []float64{2, 4, 4, 4, 5, 5, 7, 9} {
		m = m.Add(x)
	}
	fmt.Printf("n=%d mean=%.1f var=%.3f\n", m.N, m.Mean, m.Variance())
	// Output: n=8 mean=5.0 var=4.571
}

func ExampleEMA() {
	var e features.EMA
	e = e.Add(10, 0, time.Minute)                          // at 0
	e = e.Add(40, time.Minute.Milliseconds(), time.Minute) // a half-life later
	fmt.Println(e.Value())
	// Output: 30
}
