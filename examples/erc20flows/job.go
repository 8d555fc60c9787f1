package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/chain"
)

// volumeLine is one line of -volumes (and of the committed window results in
// -state/volumes, from which -volumes is written at exit).
type volumeLine struct {
	Token     string `json:"token"`
	Minute    int64  `json:"minute"`
	Volume    string `json:"volume"`
	Transfers int64  `json:"transfers"`
}

// runJob runs the job until block M is processed and committed, then writes -volumes.
func runJob(ctx context.Context, o options, logger *slog.Logger) error {
	if o.until < 0 {
		logger.Info("no -until-block: following the chain until interrupted")
	}
	store, err := persistence.OpenDirCheckpoints(o.state)
	if err != nil {
		return err
	}
	out, err := newFileSink(o.out)
	if err != nil {
		return err
	}
	volDir := filepath.Join(o.state, "volumes")
	volumes, err := stream.TwoPhaseJSONLSink[volumeLine](volDir)
	if err != nil {
		return err
	}
	cfg := chain.Config{
		Endpoints: o.rpc, Addresses: o.tokens, Topics: [][]common.Hash{{chain.TransferTopic}},
		FromBlock: o.from, Confirmations: o.confirmations, Logger: logger, PollInterval: 200 * time.Millisecond,
	}
	if o.until >= 0 {
		cfg.UntilBlock, cfg.HasUntil = uint64(o.until), true
	}

	g := graph.New("erc20flows")
	events := graph.From(g, chain.Source(cfg), graph.Name("chain"))
	transfers := graph.TryMap(events, func(e chain.Event) (chain.Transfer, error) {
		t, ok := chain.AsTransfer(e)
		if !ok {
			return t, fmt.Errorf("block %d log %d of %s: not an ERC-20 Transfer (%s)", e.Log.BlockNumber, e.Log.Index, e.Log.Address.Hex(), e.Name)
		}
		return t, nil
	}, graph.Name("transfers"))
	transfers.To(out, graph.Name("out"))
	perToken := graph.KeyBy(transfers, func(t chain.Transfer) string { return lower(t.Token.Hex()) }, graph.WithCodec(stream.JSON[chain.Transfer]()))
	perMinute := graph.Window(perToken, stream.Tumbling(time.Minute), chain.VolumeOf(), graph.Name("volume-per-minute"))
	rows := graph.Map(perMinute.Filter(func(r stream.WindowResult[string, chain.Volume]) bool { return r.Value.Count != 0 }),
		func(r stream.WindowResult[string, chain.Volume]) volumeLine {
			return volumeLine{Token: r.Key, Minute: r.Start / 1000, Volume: r.Value.Sum.String(), Transfers: r.Value.Count}
		})
	rows.To(volumes, graph.Name("volumes"))

	job, err := g.Build(graph.Parallelism(2), graph.Logger(logger), graph.Checkpoints(store, o.checkpoint))
	if err != nil {
		return err
	}
	if err := job.Run(ctx); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if err := writeVolumes(volDir, o.volumes); err != nil {
		return err
	}
	logger.Info("done", "out", o.out, "volumes", o.volumes)
	return nil
}

// writeVolumes gathers the committed window results, sorts them by token then minute and
// writes them to path (through a temporary file, renamed: a reader sees all or nothing).
func writeVolumes(dir, path string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return err
	}
	seen := map[[2]any]int{}
	var rows []volumeLine
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 0, 1<<16), 1<<24)
		for sc.Scan() {
			var v volumeLine
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				_ = fh.Close()
				return fmt.Errorf("volumes: %s: %w", f, err)
			}
			// A window that fired again (it cannot with the source's watermarks, but a
			// later result would replace an earlier one) keeps its newest result.
			k := [2]any{v.Token, v.Minute}
			if i, ok := seen[k]; ok {
				rows[i] = v
				continue
			}
			seen[k] = len(rows)
			rows = append(rows, v)
		}
		_ = fh.Close()
		if err := sc.Err(); err != nil {
			return fmt.Errorf("volumes: %s: %w", f, err)
		}
	}
	slices.SortFunc(rows, func(a, b volumeLine) int {
		return cmp.Or(cmp.Compare(a.Token, b.Token), cmp.Compare(a.Minute, b.Minute))
	})
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, r := range rows {
		if r.Transfers == 0 {
			continue
		}
		if err := enc.Encode(r); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
