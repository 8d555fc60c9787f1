// Command erc20flows follows ERC-20 Transfer logs of some tokens on an Ethereum node and
// writes every transfer exactly once, with a retraction for each one a re-org takes back,
// and the per-token per-minute volumes of the canonical chain.
//
//	go run ./examples/erc20flows -out transfers.jsonl -volumes volumes.jsonl -state state
//	go run ./examples/erc20flows -rpc ws://127.0.0.1:8546 -token 0xA0b8…,0xdAC1… \
//		-from-block 19000000 -until-block 19000100 -confirmations 12 \
//		-out transfers.jsonl -volumes volumes.jsonl -state state -checkpoint 1s
//
// Flags: -rpc URL (http:// or ws://; several comma-separated URLs are endpoints of one
// chain, rotated on failure; a WebSocket URL is used for new-heads subscriptions, its http
// twin is not guessed), -token ADDRS (comma-separated contract addresses, any case),
// -from-block N, -until-block M (both inclusive), -confirmations C, -out FILE, -volumes
// FILE, -state DIR, -checkpoint DUR.
//
// -out: JSON lines, one per Transfer log event the stage emits:
//
//	{"op":"insert"|"retract","block":N,"blockHash":"0x…","txHash":"0x…","logIndex":I,"token":"0x…","from":"0x…","to":"0x…","value":"<decimal>"}
//
// Inserts minus retracts, matched by (blockHash, logIndex), are the canonical chain's
// Transfer logs of the tokens in blocks N..M. -volumes, written at exit: JSON lines
// {"token":"0x…","minute":T,"volume":"<decimal>","transfers":K} sorted by token then minute,
// computed by an event-time tumbling window with the retractions applied.
//
// It exits 0 once block M is processed and the head it has seen is at least M + C. Kill it
// and start it again with the same flags: -out's committed lines still follow the rule
// (checkpoints in -state, a two-phase file sink). With no -rpc it starts an in-process chain
// served over HTTP and WebSocket on loopback, deploys an ERC-20, sends random transfers and
// forks the chain at random depths 1–8 while the job runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "erc20flows:", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	rpc           []string
	tokens        []common.Address
	from          uint64
	until         int64 // -1: not given
	confirmations uint64
	out, volumes  string
	state         string
	checkpoint    time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("erc20flows", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rpc := fs.String("rpc", "", "node `URL` (http:// or ws://; comma-separated for several endpoints); none: an in-process demo chain")
	tokens := fs.String("token", "", "comma-separated token contract `ADDRS`")
	from := fs.Uint64("from-block", 0, "first block `N`")
	until := fs.Int64("until-block", -1, "last block `M` (inclusive); the demo's default is 120 blocks after its token")
	fs.Uint64Var(&o.confirmations, "confirmations", 0, "emit a block once `C` blocks are on top of it")
	fs.StringVar(&o.out, "out", "", "transfers output `FILE` (JSON lines)")
	fs.StringVar(&o.volumes, "volumes", "", "per-minute volumes `FILE` (JSON lines, written at exit)")
	fs.StringVar(&o.state, "state", "", "checkpoint `DIR`")
	fs.DurationVar(&o.checkpoint, "checkpoint", time.Second, "checkpoint interval")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.out == "" || o.volumes == "" || o.state == "":
		return o, errors.New("-out FILE, -volumes FILE and -state DIR are required")
	case o.checkpoint <= 0:
		return o, fmt.Errorf("-checkpoint %v: want a positive interval", o.checkpoint)
	case *until < -1:
		return o, fmt.Errorf("-until-block %d: want a block number", *until)
	case *until >= 0 && uint64(*until) < *from:
		return o, fmt.Errorf("-until-block %d is before -from-block %d", *until, *from)
	}
	o.from, o.until = *from, *until
	if *rpc != "" {
		for _, u := range strings.Split(*rpc, ",") {
			u = strings.TrimSpace(u)
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
				return o, fmt.Errorf("-rpc %q: want an http:// or ws:// URL", u)
			}
			o.rpc = append(o.rpc, u)
		}
		// WebSocket first: the source subscribes there and calls go to the first endpoint.
		slicesStableByWS(o.rpc)
	}
	if *tokens != "" {
		for _, t := range strings.Split(*tokens, ",") {
			t = strings.TrimSpace(t)
			if !common.IsHexAddress(t) {
				return o, fmt.Errorf("-token %q: not an address", t)
			}
			o.tokens = append(o.tokens, common.HexToAddress(t))
		}
	}
	if len(o.rpc) > 0 && len(o.tokens) == 0 {
		return o, errors.New("-token ADDRS is required with -rpc")
	}
	return o, nil
}

func slicesStableByWS(urls []string) {
	var ws, other []string
	for _, u := range urls {
		if strings.HasPrefix(u, "ws") {
			ws = append(ws, u)
		} else {
			other = append(other, u)
		}
	}
	copy(urls, append(ws, other...))
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if len(o.rpc) == 0 {
		return runDemo(ctx, o, logger)
	}
	return runJob(ctx, o, logger)
}
