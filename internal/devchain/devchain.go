// Package devchain runs a real Ethereum node in-process for tests, benchmarks and demos:
// go-ethereum's dev chain as its ethclient/simulated package builds it (the same eth
// service, the same simulated beacon with its Commit, Fork and Rollback), with its JSON-RPC
// served over HTTP and WebSocket on loopback so that a client talks to it as to any node.
//
// ethclient/simulated.Backend keeps its node unexported, so its RPC servers cannot be
// reached; this package composes the same public pieces (eth.New, catalyst's
// SimulatedBeacon) and keeps the node.
//
//	c, err := devchain.Start(4)
//	defer c.Close()
//	token, err := c.DeployToken(ctx, 0, big.NewInt(1e18))
//	err = c.Transfer(ctx, 0, token, c.Accounts[1], big.NewInt(5))
//	c.Commit()
package devchain

import (
	"context"
	"crypto/ecdsa"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth"
	"github.com/ethereum/go-ethereum/eth/catalyst"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/eth/filters"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/log"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/params"
	"github.com/ethereum/go-ethereum/rpc"
)

// The test token (testtoken/Token.sol), compiled by testtoken/compile.sh.
var (
	//go:embed testtoken/Token.abi
	tokenABIJSON string
	//go:embed testtoken/Token.bin
	tokenBin string
)

// TokenABI is the ABI of the test token.
func TokenABI() abi.ABI {
	a, err := abi.JSON(strings.NewReader(tokenABIJSON))
	if err != nil {
		panic(err) // committed and tested
	}
	return a
}

// ChainID is the dev chain's id.
var ChainID = big.NewInt(1337)

// Chain is a running dev chain. Its methods that change the chain are serialised.
type Chain struct {
	node   *node.Node
	eth    *eth.Ethereum
	beacon *catalyst.SimulatedBeacon

	// Client talks to the node in-process.
	Client *ethclient.Client
	// HTTP and WS are the node's JSON-RPC endpoints on loopback.
	HTTP, WS string
	// Accounts are funded accounts whose keys the chain holds (for Send and friends).
	Accounts []common.Address

	keys   []*ecdsa.PrivateKey
	signer types.Signer
	// nonces holds the next nonce of each account as far as Send knows: the pool's pending
	// nonce can lag a block behind while the pool resets after a Commit.
	nonces map[common.Address]uint64
	tabi   abi.ABI

	// mu serialises the methods that add transactions or blocks.
	mu sync.Mutex
}

// Start starts a dev chain with n funded accounts. go-ethereum's own logging is silenced
// (it goes to its global logger).
func Start(n int) (*Chain, error) {
	log.SetDefault(log.NewLogger(slog.DiscardHandler))
	c := &Chain{signer: types.LatestSignerForChainID(ChainID), tabi: TokenABI(), nonces: map[common.Address]uint64{}}
	alloc := core.SystemContractAllocs()
	funds := new(big.Int).Exp(big.NewInt(10), big.NewInt(24), nil)
	own := types.GenesisAlloc{}
	for range n {
		k, err := crypto.GenerateKey()
		if err != nil {
			return nil, err
		}
		c.keys = append(c.keys, k)
		addr := crypto.PubkeyToAddress(k.PublicKey)
		c.Accounts = append(c.Accounts, addr)
		own[addr] = types.Account{Balance: funds}
	}
	maps.Copy(alloc, own)

	nodeConf := node.DefaultConfig
	nodeConf.DataDir = ""
	nodeConf.P2P = p2p.Config{NoDiscovery: true, ListenAddr: ""}
	nodeConf.HTTPHost, nodeConf.HTTPPort = "127.0.0.1", 0
	nodeConf.WSHost, nodeConf.WSPort = "127.0.0.1", 0
	nodeConf.HTTPModules = []string{"eth", "net", "web3"}
	nodeConf.WSModules = nodeConf.HTTPModules
	nodeConf.HTTPVirtualHosts = []string{"*"}
	nodeConf.WSOrigins = []string{"*"}
	nodeConf.Logger = log.NewLogger(slog.DiscardHandler)
	// A log search over many blocks is slow when the node runs under -race on a loaded
	// machine: give its HTTP requests minutes, not the default 30 s.
	nodeConf.HTTPTimeouts = rpc.DefaultHTTPTimeouts
	nodeConf.HTTPTimeouts.WriteTimeout = 5 * time.Minute

	ethConf := ethconfig.Defaults
	ethConf.Genesis = &core.Genesis{Config: params.AllDevChainProtocolChanges, GasLimit: ethconfig.Defaults.Miner.GasCeil, Alloc: alloc}
	ethConf.SyncMode = ethconfig.FullSync
	ethConf.TxPool.NoLocals = true

	stack, err := node.New(&nodeConf)
	if err != nil {
		return nil, fmt.Errorf("devchain: new node: %w", err)
	}
	backend, err := eth.New(stack, &ethConf)
	if err != nil {
		_ = stack.Close()
		return nil, fmt.Errorf("devchain: eth service: %w", err)
	}
	fs := filters.NewFilterSystem(backend.APIBackend, filters.Config{})
	stack.RegisterAPIs([]rpc.API{{Namespace: "eth", Service: filters.NewFilterAPI(fs)}})
	if err := stack.Start(); err != nil {
		_ = stack.Close()
		return nil, fmt.Errorf("devchain: start node: %w", err)
	}
	beacon, err := catalyst.NewSimulatedBeacon(0, common.Address{}, backend)
	if err != nil {
		_ = stack.Close()
		return nil, fmt.Errorf("devchain: simulated beacon: %w", err)
	}
	if err := beacon.Fork(backend.BlockChain().GetCanonicalHash(0)); err != nil {
		_ = beacon.Stop()
		_ = stack.Close()
		return nil, fmt.Errorf("devchain: reset to genesis: %w", err)
	}
	c.node, c.eth, c.beacon = stack, backend, beacon
	c.Client = ethclient.NewClient(stack.Attach())
	c.HTTP, c.WS = stack.HTTPEndpoint(), stack.WSEndpoint()
	return c, nil
}

// Close stops the chain.
func (c *Chain) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.node == nil {
		return nil
	}
	c.Client.Close()
	err := errors.Join(c.beacon.Stop(), c.node.Close())
	c.node = nil
	return err
}

// Commit seals a block with the pending transactions and returns its hash.
func (c *Chain) Commit() common.Hash {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.beacon.Commit()
}

// Rollback drops the pending transactions.
func (c *Chain) Rollback() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.beacon.Rollback()
}

// Head returns the head's header.
func (c *Chain) Head() *types.Header { return c.eth.BlockChain().CurrentBlock() }

// Fork makes the block depth blocks below the head the head: the blocks above it leave the
// canonical chain, and the next Commits build a side chain on it (a re-org of depth
// `depth` once they are more). Transactions still pending (the pool can take a moment to
// hand a sent transaction to the block builder) are sealed into a block first.
func (c *Chain) Fork(depth int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	for range 20 {
		head := c.Head().Number.Uint64()
		if uint64(depth) > head {
			return fmt.Errorf("devchain: fork %d deep at head %d", depth, head)
		}
		h := c.eth.BlockChain().GetHeaderByNumber(head - uint64(depth))
		if h == nil {
			return fmt.Errorf("devchain: no block %d", head-uint64(depth))
		}
		if err = c.beacon.Fork(h.Hash()); err == nil {
			return nil
		}
		c.beacon.Commit()
	}
	return fmt.Errorf("devchain: fork: %w", err)
}

// AdjustTime seals an empty block whose time is the head's plus d: the blocks after it keep
// counting from there. Pending transactions are sealed into a block first.
func (c *Chain) AdjustTime(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	for range 20 {
		if err = c.beacon.AdjustTime(d); err == nil {
			return nil
		}
		c.beacon.Commit()
	}
	return fmt.Errorf("devchain: adjust time: %w", err)
}

// Send signs and sends a transaction from account `from` (an index into Accounts) to `to`
// (nil: create a contract) with data, and returns its hash. It is mined by the next Commit.
func (c *Chain) Send(ctx context.Context, from int, to *common.Address, data []byte, gas uint64) (common.Hash, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	addr := c.Accounts[from]
	nonce, err := c.Client.PendingNonceAt(ctx, addr)
	if err != nil {
		return common.Hash{}, fmt.Errorf("devchain: nonce of %s: %w", addr.Hex(), err)
	}
	nonce = max(nonce, c.nonces[addr])
	tx, err := types.SignNewTx(c.keys[from], c.signer, &types.DynamicFeeTx{
		ChainID: ChainID, Nonce: nonce, GasTipCap: big.NewInt(params.GWei), GasFeeCap: big.NewInt(100 * params.GWei),
		Gas: gas, To: to, Data: data,
	})
	if err != nil {
		return common.Hash{}, fmt.Errorf("devchain: sign: %w", err)
	}
	if err := c.Client.SendTransaction(ctx, tx); err != nil {
		return common.Hash{}, fmt.Errorf("devchain: send: %w", err)
	}
	c.nonces[addr] = nonce + 1
	return tx.Hash(), nil
}

// DeployToken deploys the test ERC-20 from account `from` with supply minted to it, commits
// the block and returns the token's address.
func (c *Chain) DeployToken(ctx context.Context, from int, name, symbol string, supply *big.Int) (common.Address, error) {
	args, err := c.tabi.Pack("", name, symbol, supply)
	if err != nil {
		return common.Address{}, fmt.Errorf("devchain: constructor args: %w", err)
	}
	code := append(common.FromHex(strings.TrimSpace(tokenBin)), args...)
	if _, err := c.Send(ctx, from, nil, code, 3_000_000); err != nil {
		return common.Address{}, err
	}
	c.mu.Lock()
	addr := crypto.CreateAddress(c.Accounts[from], c.nonces[c.Accounts[from]]-1)
	c.mu.Unlock()
	// The contract's address follows from the sender and nonce; its code says the
	// deployment ran (a receipt would wait for the node's background transaction indexer).
	// The pool may hand the transaction to the block builder a block late.
	for range 100 {
		c.Commit()
		code, err = c.Client.CodeAt(ctx, addr, nil)
		if err != nil {
			return common.Address{}, fmt.Errorf("devchain: code of the token: %w", err)
		}
		if len(code) > 0 {
			return addr, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return common.Address{}, errors.New("devchain: token deployment reverted or never mined")
}

// Transfer sends token.transfer(to, value) from account `from`.
func (c *Chain) Transfer(ctx context.Context, from int, token, to common.Address, value *big.Int) error {
	return c.call(ctx, from, token, "transfer", to, value)
}

// Mint sends token.mint(to, value) (a Transfer from the zero address).
func (c *Chain) Mint(ctx context.Context, from int, token, to common.Address, value *big.Int) error {
	return c.call(ctx, from, token, "mint", to, value)
}

// Burn sends token.burn(value) from account `from` (a Transfer to the zero address).
func (c *Chain) Burn(ctx context.Context, from int, token common.Address, value *big.Int) error {
	return c.call(ctx, from, token, "burn", value)
}

func (c *Chain) call(ctx context.Context, from int, token common.Address, method string, args ...any) error {
	data, err := c.tabi.Pack(method, args...)
	if err != nil {
		return fmt.Errorf("devchain: pack %s: %w", method, err)
	}
	_, err = c.Send(ctx, from, &token, data, 200_000)
	return err
}
