package drift_test

import (
	"fmt"

	"github.com/eddyflow/eddy/stream/infer/drift"
)

func ExampleDetector() {
	var reference, same, shifted []float64
	for i := range 1000 {
		reference = append(reference, float64(i%100))
		same = append(same, float64((i*7)%100))
		shifted = append(shifted, float64(i%100)+30)
	}
	ref, _ := drift.NewReference(reference, 10)
	d := drift.Detector{Reference: ref, PSI: 0.25, Alpha: 0.001}
	_, _, a := d.Check(same)
	psi, ks, b := d.Check(shifted)
	fmt.Printf("same: %v; shifted: %v (PSI %.2f, KS %.2f)\n", a, b, psi, ks)
	// Output: same: false; shifted: true (PSI 2.49, KS 0.30)
}
