package chain

import (
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"

	"github.com/eddyflow/eddy/stream"
)

// Transfer is an ERC-20 Transfer event in a flat form, for the stages after the source.
// It encodes to JSON (stream.JSON) with Value as a JSON number of any size.
type Transfer struct {
	Token     common.Address `json:"token"`
	From      common.Address `json:"from"`
	To        common.Address `json:"to"`
	Value     *big.Int       `json:"value"`
	Block     uint64         `json:"block"`
	BlockHash common.Hash    `json:"blockHash"`
	TxHash    common.Hash    `json:"txHash"`
	LogIndex  uint           `json:"logIndex"`
	// Time is the block's timestamp, Unix seconds.
	Time uint64 `json:"time"`
}

// AsTransfer reads an ERC-20 Transfer out of a decoded event. ok is false for any other
// event (an ERC-721 Transfer carries a tokenId, not a value).
func AsTransfer(e Event) (t Transfer, ok bool) {
	if e.Name != "Transfer" {
		return t, false
	}
	from, ok1 := e.Args["from"].(common.Address)
	to, ok2 := e.Args["to"].(common.Address)
	value, ok3 := e.Args["value"].(*big.Int)
	if !ok1 || !ok2 || !ok3 {
		return t, false
	}
	return Transfer{Token: e.Log.Address, From: from, To: to, Value: value, Block: e.Log.BlockNumber, BlockHash: e.Log.BlockHash,
		TxHash: e.Log.TxHash, LogIndex: e.Log.Index, Time: e.BlockTime}, true
}

// Volume is the accumulator and result of VolumeOf: the sum of the values and how many
// there were.
type Volume struct {
	Sum   *big.Int `json:"sum"`
	Count int64    `json:"count"`
}

func (v Volume) String() string { return fmt.Sprintf("%v in %d", v.Sum, v.Count) }

// VolumeOf sums the values of transfers as big integers and counts them. It retracts, so a
// window over a stream with re-orgs ends with the canonical chain's sums, and it merges.
func VolumeOf() stream.Aggregator[Transfer, Volume, Volume] { return volumeAgg{} }

type volumeAgg struct{}

var (
	_ stream.Retracter[Transfer, Volume] = volumeAgg{}
	_ stream.Merger[Volume]              = volumeAgg{}
)

func (volumeAgg) Zero() Volume { return Volume{Sum: new(big.Int)} }

// Add returns a new accumulator: accumulators are values, and a *big.Int must not be shared
// between two of them.
func (volumeAgg) Add(acc Volume, t Transfer) Volume {
	return Volume{Sum: new(big.Int).Add(orZero(acc.Sum), orZero(t.Value)), Count: acc.Count + 1}
}

func (volumeAgg) Retract(acc Volume, t Transfer) Volume {
	return Volume{Sum: new(big.Int).Sub(orZero(acc.Sum), orZero(t.Value)), Count: acc.Count - 1}
}

func (volumeAgg) Merge(a, b Volume) Volume {
	return Volume{Sum: new(big.Int).Add(orZero(a.Sum), orZero(b.Sum)), Count: a.Count + b.Count}
}

func (volumeAgg) Result(acc Volume) Volume {
	return Volume{Sum: new(big.Int).Set(orZero(acc.Sum)), Count: acc.Count}
}

func orZero(v *big.Int) *big.Int {
	if v == nil {
		return new(big.Int)
	}
	return v
}
