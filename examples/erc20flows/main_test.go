package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/eddyflow/eddy/internal/devchain"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/chain"
)

// The promise: kill the program at any moment while the chain re-orgs under it, start it
// again with the same flags, and when it finally exits, -out's committed lines follow the
// rule (inserts minus retracts, matched by (blockHash, logIndex), are the canonical Transfer
// logs of blocks N..M, each retract after its insert) and -volumes holds the canonical
// per-minute sums. The chain runs in the test; the program talks to it over loopback
// JSON-RPC, is SIGKILLed at random moments four times and restarted each time.
func TestKilledDuringReorgsExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "erc20flows")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	c, err := devchain.Start(4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	huge := new(big.Int).Lsh(big.NewInt(1), 200)
	tokenA, err := c.DeployToken(ctx, 0, "A", "A", huge)
	if err != nil {
		t.Fatal(err)
	}
	tokenB, err := c.DeployToken(ctx, 1, "B", "B", huge)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []common.Address{tokenA, tokenB} {
		for i := range c.Accounts {
			if err := c.Mint(ctx, 0, tok, c.Accounts[i], huge); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Commit()
	from := c.Head().Number.Uint64() + 1
	until := from + 90
	out, vols := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "volumes.jsonl")
	// One token checksummed, one lowercase: -token takes any case.
	args := []string{"-rpc", c.WS + "," + c.HTTP, "-token", tokenA.Hex() + "," + strings.ToLower(tokenB.Hex()),
		"-from-block", fmt.Sprint(from), "-until-block", fmt.Sprint(until), "-confirmations", "0",
		"-out", out, "-volumes", vols, "-state", filepath.Join(dir, "state"), "-checkpoint", "100ms"}

	rng := rand.New(rand.NewPCG(5, 8))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var driveErr error
	// The chain stays short of until while the program is being killed, so that no run can
	// finish before the fourth kill however fast the machine is.
	var hold atomic.Bool
	hold.Store(true)
	forks := 0
	go func() {
		defer wg.Done()
		driveErr = driveChain(c, []common.Address{tokenA, tokenB}, until, stop, &hold, rand.New(rand.NewPCG(9, 9)), &forks)
	}()
	stopDriver := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopDriver()

	kills, finished := 0, false
	for run := 0; run < 20 && !finished; run++ {
		cmd := exec.Command(bin, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		limit := 90 * time.Second
		if kills < 4 {
			limit = time.Duration(400+rng.IntN(1200)) * time.Millisecond
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d failed: %v\n%s", run, err, stderr.String())
			}
			finished = true
		case <-time.After(limit):
			if kills >= 4 {
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("the last run did not finish within %v\n%s", limit, lastLines(stderr.String(), 30))
			}
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
			if kills == 4 {
				hold.Store(false)
			}
		}
	}
	if kills < 4 || !finished {
		t.Fatalf("%d kills, finished %v: the test did not do what it says", kills, finished)
	}
	stopDriver() // the chain is final from here on, and forks and driveErr are ours to read
	if driveErr != nil {
		t.Fatal(driveErr)
	}
	if forks < 3 {
		t.Fatalf("only %d forks during the runs", forks)
	}

	want, minutes := canonicalTransfers(t, c.HTTP, []common.Address{tokenA, tokenB}, from, until)
	live, retracts := checkRule(t, out)
	if len(live) != len(want) {
		t.Errorf("%d live transfers in -out, the canonical chain has %d", len(live), len(want))
	}
	for k, w := range want {
		if g, ok := live[k]; !ok || g != w {
			t.Errorf("transfer %s: -out has %+v, canonical %+v", k, g, w)
		}
	}
	checkVolumes(t, vols, want, minutes)
	t.Logf("%d kills, %d forks, %d transfers, %d retractions", kills, forks, len(want), retracts)
}

// driveChain makes blocks with random transfers, mints and burns of both tokens every
// 10–40 ms, and forks the chain 1–8 blocks deep at random while the head is more than 10
// blocks below until. It runs until stop is closed.
func driveChain(c *devchain.Chain, tokens []common.Address, until uint64, stop chan struct{}, hold *atomic.Bool, rng *rand.Rand, forks *int) error {
	ctx := context.Background()
	block := func() error {
		for range 1 + rng.IntN(3) {
			tok := tokens[rng.IntN(len(tokens))]
			from, to := rng.IntN(len(c.Accounts)), c.Accounts[rng.IntN(len(c.Accounts))]
			v := new(big.Int).Lsh(new(big.Int).SetUint64(rng.Uint64()), uint(rng.IntN(70)))
			var err error
			switch rng.IntN(5) {
			case 0:
				err = c.Mint(ctx, from, tok, to, v)
			case 1:
				err = c.Burn(ctx, from, tok, v)
			default:
				err = c.Transfer(ctx, from, tok, to, v)
			}
			if err != nil {
				// A loaded machine (-race) can time a request out; the test is about the
				// program, not about every transfer reaching the chain.
				continue
			}
		}
		c.Commit()
		return nil
	}
	for {
		select {
		case <-stop:
			return nil
		case <-time.After(time.Duration(10+rng.IntN(30)) * time.Millisecond):
		}
		head := c.Head().Number.Uint64()
		if head+10 < until && rng.IntN(6) == 0 {
			depth := 1 + rng.IntN(8)
			if err := c.Fork(depth); err != nil {
				continue // as above: try again later
			}
			*forks++
			for range depth + 1 {
				if err := block(); err != nil {
					return err
				}
			}
			continue
		}
		if hold.Load() && head+12 >= until {
			continue
		}
		if rng.IntN(8) == 0 {
			_ = c.AdjustTime(time.Duration(20+rng.IntN(40)) * time.Second)
			continue
		}
		if err := block(); err != nil {
			return err
		}
	}
}

// canonicalTransfers reads the tokens' Transfer logs of blocks from..to back over JSON-RPC,
// as -out lines keyed by blockHash/logIndex.
func canonicalTransfers(t *testing.T, url string, tokens []common.Address, from, to uint64) (map[string]outLine, map[string]int64) {
	t.Helper()
	ctx := context.Background()
	cl, err := ethclient.DialContext(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	logs, err := cl.FilterLogs(ctx, ethereum.FilterQuery{FromBlock: new(big.Int).SetUint64(from), ToBlock: new(big.Int).SetUint64(to),
		Addresses: tokens, Topics: [][]common.Hash{{chain.TransferTopic}}})
	if err != nil {
		t.Fatal(err)
	}
	dec := chain.DefaultDecoder()
	want, minutes := map[string]outLine{}, map[string]int64{}
	for _, l := range logs {
		name, args, err := dec.Decode(l)
		if err != nil {
			t.Fatal(err)
		}
		h, err := cl.HeaderByNumber(ctx, new(big.Int).SetUint64(l.BlockNumber))
		if err != nil {
			t.Fatal(err)
		}
		tr, ok := chain.AsTransfer(chain.Event{Log: l, BlockTime: h.Time, Name: name, Args: args})
		if !ok {
			t.Fatalf("not a transfer: %+v", l)
		}
		line := lineOf(stream.Record[chain.Transfer]{Value: tr})
		want[idOf(line)] = line
		minutes[idOf(line)] = int64(h.Time) / 60 * 60
	}
	return want, minutes
}

func idOf(l outLine) string { return fmt.Sprintf("%s/%d", l.BlockHash, l.LogIndex) }

// checkRule reads -out and checks every line's form and that each retract repeats a live
// insert; it returns the live transfers by identity.
func checkRule(t *testing.T, path string) (map[string]outLine, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	live := map[string]outLine{}
	retracts := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var l outLine
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %d: %v: %s", n, err, sc.Text())
		}
		for _, hex := range []string{l.BlockHash, l.TxHash, l.Token, l.From, l.To} {
			if hex != strings.ToLower(hex) || !strings.HasPrefix(hex, "0x") {
				t.Fatalf("line %d: %q is not lowercase 0x hex", n, hex)
			}
		}
		if v, ok := new(big.Int).SetString(l.Value, 10); !ok || v.String() != l.Value {
			t.Fatalf("line %d: value %q is not a base-10 integer without leading zeros", n, l.Value)
		}
		k := idOf(l)
		switch l.Op {
		case "insert":
			if _, ok := live[k]; ok {
				t.Fatalf("line %d: insert of %s while it is live (a duplicate)", n, k)
			}
			live[k] = l
		case "retract":
			prev, ok := live[k]
			if !ok {
				t.Fatalf("line %d: retract of %s with no insert before it", n, k)
			}
			l.Op = "insert"
			if prev != l {
				t.Fatalf("line %d: retract %+v does not repeat its insert %+v", n, l, prev)
			}
			delete(live, k)
			retracts++
		default:
			t.Fatalf("line %d: op %q", n, l.Op)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return live, retracts
}

// checkVolumes checks -volumes against the per-token per-minute sums of want.
func checkVolumes(t *testing.T, path string, want map[string]outLine, minutes map[string]int64) {
	t.Helper()
	type key struct {
		token  string
		minute int64
	}
	sums := map[key]*volumeLine{}
	for id, l := range want {
		k := key{l.Token, minutes[id]}
		v := sums[k]
		if v == nil {
			v = &volumeLine{Token: l.Token, Minute: k.minute, Volume: "0"}
			sums[k] = v
		}
		a, _ := new(big.Int).SetString(v.Volume, 10)
		b, _ := new(big.Int).SetString(l.Value, 10)
		v.Volume = a.Add(a, b).String()
		v.Transfers++
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != len(sums) {
		t.Errorf("%d lines in -volumes, want %d (token, minute) rows", len(lines), len(sums))
	}
	var prev *volumeLine
	for i, line := range lines {
		var v volumeLine
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("-volumes line %d: %v", i+1, err)
		}
		if prev != nil && (v.Token < prev.Token || v.Token == prev.Token && v.Minute <= prev.Minute) {
			t.Errorf("-volumes line %d is out of order", i+1)
		}
		prev = &v
		w := sums[key{v.Token, v.Minute}]
		if w == nil || *w != v {
			t.Errorf("-volumes line %d: %+v, canonical %+v", i+1, v, w)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-out", "o", "-volumes", "v"},
		{"-out", "o", "-volumes", "v", "-state", "s", "-checkpoint", "0s"},
		{"-out", "o", "-volumes", "v", "-state", "s", "-rpc", "ftp://x", "-token", "0x0000000000000000000000000000000000000001"},
		{"-out", "o", "-volumes", "v", "-state", "s", "-rpc", "http://x"},
		{"-out", "o", "-volumes", "v", "-state", "s", "-rpc", "http://x", "-token", "0x12"},
		{"-out", "o", "-volumes", "v", "-state", "s", "-from-block", "10", "-until-block", "5"},
	} {
		if _, err := parseFlags(args, &strings.Builder{}); err == nil {
			t.Errorf("parseFlags(%q) = nil, want an error", args)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
