package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/eddyflow/eddy/internal/devchain"
)

// runDemo starts an in-process chain, deploys a token, and runs the job against it while a
// driver sends random transfers and forks the chain at random depths 1–8.
func runDemo(ctx context.Context, o options, logger *slog.Logger) error {
	c, err := devchain.Start(4)
	if err != nil {
		return err
	}
	defer c.Close()
	token, err := c.DeployToken(ctx, 0, "Demo", "DMO", new(big.Int).Lsh(big.NewInt(1), 200))
	if err != nil {
		return err
	}
	for i := 1; i < len(c.Accounts); i++ {
		if err := c.Mint(ctx, 0, token, c.Accounts[i], new(big.Int).Lsh(big.NewInt(1), 200)); err != nil {
			return err
		}
	}
	c.Commit()
	o.tokens = append(o.tokens, token)
	o.rpc = []string{c.WS, c.HTTP}
	if o.until < 0 {
		o.until = int64(c.Head().Number.Uint64()) + 120
	}
	logger.Info("demo chain", "http", c.HTTP, "ws", c.WS, "token", token.Hex(), "from", o.from, "until", o.until)

	dctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	driveErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		driveErr <- drive(dctx, c, token, uint64(o.until), logger)
	}()
	err = runJob(ctx, o, logger)
	stop()
	wg.Wait()
	if derr := <-driveErr; err == nil && derr != nil && derr != context.Canceled {
		err = derr
	}
	return err
}

// drive makes a block every 20–80 ms with random transfers, mints and burns, and now and
// then forks the chain 1–8 blocks deep. It stops forking 10 blocks before until, so that
// the job's last blocks are final, and goes on making blocks until ctx is done.
func drive(ctx context.Context, c *devchain.Chain, token common.Address, until uint64, logger *slog.Logger) error {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	value := func() *big.Int {
		v := new(big.Int).SetUint64(rng.Uint64())
		return v.Lsh(v, uint(rng.IntN(40)))
	}
	block := func() error {
		for range 1 + rng.IntN(4) {
			from := rng.IntN(len(c.Accounts))
			to := c.Accounts[rng.IntN(len(c.Accounts))]
			var err error
			switch rng.IntN(6) {
			case 0:
				err = c.Mint(ctx, from, token, to, value())
			case 1:
				err = c.Burn(ctx, from, token, value())
			default:
				err = c.Transfer(ctx, from, token, to, value())
			}
			if err != nil {
				logger.Warn("demo: transaction not sent", "err", err)
			}
		}
		c.Commit()
		return nil
	}
	forks := 0
	for {
		t := time.NewTimer(time.Duration(20+rng.IntN(60)) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		head := c.Head().Number.Uint64()
		if head+10 < until && head > 12 && rng.IntN(8) == 0 {
			depth := 1 + rng.IntN(8)
			if err := c.Fork(depth); err != nil {
				return fmt.Errorf("demo driver: fork: %w", err)
			}
			forks++
			logger.Info("demo: forked the chain", "depth", depth, "at", head-uint64(depth), "forks", forks)
			for range depth + 1 {
				if err := block(); err != nil {
					return err
				}
			}
			continue
		}
		if rng.IntN(10) == 0 {
			_ = c.AdjustTime(time.Duration(20+rng.IntN(40)) * time.Second) // spread the transfers over minutes
			continue
		}
		if err := block(); err != nil {
			return err
		}
	}
}
