package persistence_test

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/eddyflow/eddy/persistence"
)

// A key group's snapshot as a stream: a full run and a run of the changes after it, written
// to a checkpoint store's snapshot objects and merged back, key by key.
func ExampleMergeRuns() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "eddy-example-")
	defer os.RemoveAll(dir)
	store, err := persistence.OpenDirCheckpoints(dir)
	if err != nil {
		panic(err)
	}
	write := func(key string, pairs ...string) persistence.RunHandle {
		w, err := store.CreateObject(ctx, key)
		if err != nil {
			panic(err)
		}
		rw := persistence.NewRunWriter(w)
		for i := 0; i < len(pairs); i += 2 {
			if err := rw.Add([]byte(pairs[i]), []byte(pairs[i+1])); err != nil {
				panic(err)
			}
		}
		h, err := rw.Finish()
		if err != nil {
			panic(err)
		}
		if err := w.Commit(); err != nil {
			panic(err)
		}
		h.Key = key
		return h
	}
	chain := []persistence.RunHandle{
		write(persistence.CheckpointObjectKey(1, "job~count~0.a"), "apple", "1", "pear", "4"),
		write(persistence.CheckpointObjectKey(2, "job~count~0.b"), "apple", "2", "plum", "1"),
	}
	var runs []*persistence.RunReader
	for i := range chain {
		r, err := store.OpenObject(ctx, chain[i].Key)
		if err != nil {
			panic(err)
		}
		defer r.Close()
		runs = append(runs, persistence.NewRunReader(r, chain[i].Key, &chain[i]))
	}
	var out bytes.Buffer
	err = persistence.MergeRuns(runs, func(k, v []byte) error {
		fmt.Fprintf(&out, "%s=%s ", k, v)
		return nil
	})
	fmt.Println(out.String(), err)
	// Output: apple=2 pear=4 plum=1  <nil>
}
