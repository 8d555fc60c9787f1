package kserve_test

import (
	"context"
	"fmt"

	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/kserve"
	"github.com/eddyflow/eddy/stream/infer/kserve/kservetest"
)

func ExampleDial() {
	// A v2 server in the process; in production, Triton or KServe.
	srv := kservetest.NewServer("doubler", 2, infer.RowFunc(func(r []float32) []float32 { return []float32{2 * r[0], 2 * r[1]} }))
	defer srv.Close()

	ctx := context.Background()
	c, err := kserve.Dial(ctx, srv.URL, "doubler")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	out, err := c.Infer(ctx, [][]float32{{1, 2}, {3, 4}})
	fmt.Println(out, err, c.InputWidth())
	// Output: [[2 4] [6 8]] <nil> 2
}
