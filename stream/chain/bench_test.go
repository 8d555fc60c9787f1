package chain_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/chain"
)

// countingOutput counts what a split hands on.
type countingOutput struct{ recs, dead int }

func (o *countingOutput) Emit(stream.Record[chain.Event]) { o.recs++ }
func (o *countingOutput) DeadLetter(stream.DeadLetter)    { o.dead++ }
func (o *countingOutput) Watermark(int64)                 {}

// BenchmarkCatchUp: catching up over a chain of CHAIN_BENCH_BLOCKS blocks (default 10,000)
// with 1–4 Transfer logs each, over loopback HTTP JSON-RPC: the source (batched headers and
// eth_getLogs by block hash, Concurrency batches in flight, re-org checks, decoding) against
// a plain go-ethereum ethclient loop that fetches the same (the header, then the logs by
// block hash, block after block) and decodes nothing. Reported: blocks/s and logs/s.
//
//	CHAIN_BENCH_BLOCKS=10000 go test -run '^$' -bench CatchUp -benchtime 1x ./stream/chain/
func BenchmarkCatchUp(b *testing.B) {
	blocks := 10_000
	if s := os.Getenv("CHAIN_BENCH_BLOCKS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		blocks = n
	}
	c := startChain(b, 77)
	start := time.Now()
	for range blocks {
		c.block()
	}
	from, to := c.first, c.head()
	b.Logf("built %d blocks in %v", to-from+1, time.Since(start).Round(time.Millisecond))
	want, _ := canonical(b, c.HTTP, c.tokens, from, to)
	filter := [][]common.Hash{{chain.TransferTopic}}

	b.Run("source", func(b *testing.B) {
		for range b.N {
			splits, err := chain.Source(chain.Config{Endpoints: []string{c.HTTP}, Addresses: c.tokens, Topics: filter,
				FromBlock: from, UntilBlock: to, HasUntil: true, Logger: slog.New(slog.DiscardHandler)}).Splits(1)
			if err != nil {
				b.Fatal(err)
			}
			out := &countingOutput{}
			for {
				_, err := splits[0].Read(context.Background(), 4096, out)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			_ = splits[0].Close()
			if out.recs != len(want) || out.dead != 0 {
				b.Fatalf("%d events and %d dead letters, want %d events", out.recs, out.dead, len(want))
			}
		}
		b.ReportMetric(float64(to-from+1)*float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
		b.ReportMetric(float64(len(want))*float64(b.N)/b.Elapsed().Seconds(), "logs/s")
	})

	b.Run("ethclient-loop", func(b *testing.B) {
		ctx := context.Background()
		for range b.N {
			cl, err := ethclient.DialContext(ctx, c.HTTP)
			if err != nil {
				b.Fatal(err)
			}
			logs := 0
			for n := from; n <= to; n++ {
				h, err := cl.HeaderByNumber(ctx, new(big.Int).SetUint64(n))
				if err != nil {
					b.Fatal(err)
				}
				hash := h.Hash()
				ls, err := cl.FilterLogs(ctx, ethereum.FilterQuery{BlockHash: &hash, Addresses: c.tokens, Topics: filter})
				if err != nil {
					b.Fatal(err)
				}
				logs += len(ls)
			}
			cl.Close()
			if logs != len(want) {
				b.Fatalf("%d logs, want %d", logs, len(want))
			}
		}
		b.ReportMetric(float64(to-from+1)*float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
		b.ReportMetric(float64(len(want))*float64(b.N)/b.Elapsed().Seconds(), "logs/s")
	})
}
