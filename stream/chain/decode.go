package chain

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// Event is one decoded log, as the source emits it. Its identity is (BlockHash, LogIndex):
// an insert and the retract that cancels it carry the same one.
type Event struct {
	// Log is the log as the node reported it (LogIndex is block-wide).
	Log types.Log
	// BlockTime is the block's timestamp, Unix seconds. The record's event time is
	// BlockTime in milliseconds.
	BlockTime uint64
	// Name is the ABI event's name, e.g. "Transfer".
	Name string
	// Args holds the event's arguments by name, indexed and not, as go-ethereum's abi
	// package decodes them (common.Address, *big.Int, bool, []byte, string, ...).
	Args map[string]any
}

// ID is the event's identity.
type ID struct {
	BlockHash common.Hash
	LogIndex  uint
}

// ID returns the event's identity.
func (e Event) ID() ID { return ID{e.Log.BlockHash, e.Log.Index} }

// Decoder decodes logs by their first topic (the event signature's hash). Several events may
// share a signature (ERC-20 and ERC-721 Transfer): the one whose indexed arguments match the
// log's topics decodes it. A Decoder is read-only once built and safe for concurrent use.
type Decoder struct {
	bySig map[common.Hash][]abi.Event
}

// ERC20ABI and ERC721ABI are the Transfer events of the two token standards.
const (
	ERC20ABI  = `[{"anonymous":false,"inputs":[{"indexed":true,"name":"from","type":"address"},{"indexed":true,"name":"to","type":"address"},{"indexed":false,"name":"value","type":"uint256"}],"name":"Transfer","type":"event"}]`
	ERC721ABI = `[{"anonymous":false,"inputs":[{"indexed":true,"name":"from","type":"address"},{"indexed":true,"name":"to","type":"address"},{"indexed":true,"name":"tokenId","type":"uint256"}],"name":"Transfer","type":"event"}]`
)

// TransferTopic is topic 0 of ERC-20 and ERC-721 Transfer logs.
var TransferTopic = common.HexToHash("0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")

// NewDecoder returns a decoder of the events in the given ABI JSON documents.
func NewDecoder(abiJSON ...string) (*Decoder, error) {
	d := &Decoder{bySig: map[common.Hash][]abi.Event{}}
	for i, doc := range abiJSON {
		a, err := abi.JSON(strings.NewReader(doc))
		if err != nil {
			return nil, fmt.Errorf("chain: ABI %d: %w", i, err)
		}
		for _, ev := range a.Events {
			if ev.Anonymous {
				continue // no signature topic to find it by
			}
			d.bySig[ev.ID] = append(d.bySig[ev.ID], ev)
		}
	}
	return d, nil
}

// DefaultDecoder decodes ERC-20 and ERC-721 Transfer.
func DefaultDecoder() *Decoder {
	d, err := NewDecoder(ERC20ABI, ERC721ABI)
	if err != nil {
		panic(err) // the built-in ABIs are constants
	}
	return d
}

// Decode decodes one log. A log no event of the decoder matches is an error (the source
// sends it to the dead letters).
func (d *Decoder) Decode(l types.Log) (name string, args map[string]any, err error) {
	if len(l.Topics) == 0 {
		return "", nil, errors.New("log without topics (anonymous event)")
	}
	cands := d.bySig[l.Topics[0]]
	if len(cands) == 0 {
		return "", nil, fmt.Errorf("no event with signature %s", l.Topics[0].Hex())
	}
	var errs []error
	for _, ev := range cands {
		var indexed abi.Arguments
		for _, in := range ev.Inputs {
			if in.Indexed {
				indexed = append(indexed, in)
			}
		}
		if len(indexed) != len(l.Topics)-1 {
			errs = append(errs, fmt.Errorf("%s: %d indexed arguments, log has %d topics", ev.Sig, len(indexed), len(l.Topics)-1))
			continue
		}
		args := map[string]any{}
		if err := ev.Inputs.NonIndexed().UnpackIntoMap(args, l.Data); err != nil {
			errs = append(errs, fmt.Errorf("%s: data: %w", ev.Sig, err))
			continue
		}
		if err := abi.ParseTopicsIntoMap(args, indexed, l.Topics[1:]); err != nil {
			errs = append(errs, fmt.Errorf("%s: topics: %w", ev.Sig, err))
			continue
		}
		return ev.Name, args, nil
	}
	return "", nil, fmt.Errorf("undecodable log: %w", errors.Join(errs...))
}
