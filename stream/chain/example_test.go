package chain_test

import (
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/eddyflow/eddy/stream/chain"
)

// A decoder built from any ABI JSON finds the event by the log's first topic.
func ExampleNewDecoder() {
	dec, err := chain.NewDecoder(chain.ERC20ABI)
	if err != nil {
		fmt.Println(err)
		return
	}
	from, to := common.HexToAddress("0x01"), common.HexToAddress("0x02")
	l := types.Log{
		Topics: []common.Hash{chain.TransferTopic, common.BytesToHash(from.Bytes()), common.BytesToHash(to.Bytes())},
		Data:   common.LeftPadBytes(big.NewInt(1500).Bytes(), 32),
	}
	name, args, err := dec.Decode(l)
	fmt.Println(name, args["from"], args["to"], args["value"], err)
	// Output: Transfer 0x0000000000000000000000000000000000000001 0x0000000000000000000000000000000000000002 1500 <nil>
}
