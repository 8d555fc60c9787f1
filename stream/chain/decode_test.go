package chain_test

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/eddyflow/eddy/stream/chain"
)

func TestDecoder(t *testing.T) {
	from, to := common.HexToAddress("0x1111"), common.HexToAddress("0x2222")
	topic := func(a common.Address) common.Hash { return common.BytesToHash(a.Bytes()) }
	value := new(big.Int).Lsh(big.NewInt(3), 100)
	dec := chain.DefaultDecoder()
	for _, tc := range []struct {
		name    string
		log     types.Log
		wantErr bool
		check   func(t *testing.T, name string, args map[string]any)
	}{
		{"erc20", types.Log{Topics: []common.Hash{chain.TransferTopic, topic(from), topic(to)}, Data: common.LeftPadBytes(value.Bytes(), 32)}, false,
			func(t *testing.T, name string, args map[string]any) {
				if name != "Transfer" || args["from"] != from || args["to"] != to || args["value"].(*big.Int).Cmp(value) != 0 {
					t.Errorf("got %s %v", name, args)
				}
			}},
		{"erc721", types.Log{Topics: []common.Hash{chain.TransferTopic, topic(from), topic(to), common.BigToHash(big.NewInt(42))}}, false,
			func(t *testing.T, name string, args map[string]any) {
				if args["tokenId"].(*big.Int).Int64() != 42 || args["from"] != from {
					t.Errorf("got %s %v", name, args)
				}
			}},
		{"no topics", types.Log{}, true, nil},
		{"unknown signature", types.Log{Topics: []common.Hash{common.HexToHash("0xbeef")}}, true, nil},
		{"erc20 with short data", types.Log{Topics: []common.Hash{chain.TransferTopic, topic(from), topic(to)}, Data: []byte{1}}, true, nil},
		{"one topic too few", types.Log{Topics: []common.Hash{chain.TransferTopic, topic(from)}}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, args, err := dec.Decode(tc.log)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, name, args)
			}
		})
	}
	if _, err := chain.NewDecoder(`[{"type":"event"`); err == nil {
		t.Error("NewDecoder accepted broken ABI JSON")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []chain.Config{
		{},
		{Endpoints: []string{"ftp://node"}},
		{Endpoints: []string{"http://node"}, FromBlock: 10, UntilBlock: 5, HasUntil: true},
		{Endpoints: []string{"http://node"}, MaxReorgDepth: -1},
		{Endpoints: []string{"http://node"}, RetryBase: 1000, RetryMax: 10},
	} {
		if _, err := chain.Source(cfg).Splits(1); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
