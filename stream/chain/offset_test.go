package chain

import (
	"bytes"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/eddyflow/eddy/stream"
)

func testOffsetSplit(t testing.TB) *split {
	cfg, err := Config{Endpoints: []string{"http://127.0.0.1:1"}, FromBlock: 10, MaxReorgDepth: 4}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newSplit(cfg)
}

// sampleState is a split state with two blocks, logs and a queue with a watermark.
func sampleState() (ring []block, queue []queued) {
	h1, h2 := common.HexToHash("0x01"), common.HexToHash("0x02")
	l := types.Log{Address: common.HexToAddress("0xaa"), Topics: []common.Hash{TransferTopic}, Data: []byte{1, 2}, BlockNumber: 11, BlockHash: h2, Index: 3}
	ring = []block{{Number: 10, Hash: h1, Parent: common.HexToHash("0x00"), Time: 100}, {Number: 11, Hash: h2, Parent: h1, Time: 101, Logs: []types.Log{l}}}
	queue = []queued{{Kind: stream.Retract, Log: &l, Time: 101}, {IsMark: true, Mark: 100999}}
	return ring, queue
}

func TestOffsetRoundTrip(t *testing.T) {
	s := testOffsetSplit(t)
	s.ring, s.queue = sampleState()
	s.next = 12
	off, err := s.Offset()
	if err != nil {
		t.Fatal(err)
	}
	r := testOffsetSplit(t)
	if err := r.Seek(off); err != nil {
		t.Fatal(err)
	}
	again, _ := r.Offset()
	if !bytes.Equal(off, again) || r.next != 12 || len(r.ring) != 2 || len(r.queue) != 2 || r.topChecked {
		t.Fatalf("after Seek: next %d, %d blocks, %d queued, offset changed %v", r.next, len(r.ring), len(r.queue), !bytes.Equal(off, again))
	}
}

func TestSeekRejectsBadOffsets(t *testing.T) {
	s := testOffsetSplit(t)
	ring, queue := sampleState()
	enc := func(mut func(st *offsetState)) []byte {
		st := offsetState{From: 10, Next: 12, Ring: append([]block(nil), ring...), Queue: append([]queued(nil), queue...)}
		mut(&st)
		s2 := testOffsetSplit(t)
		s2.next, s2.ring, s2.queue = st.Next, st.Ring, st.Queue
		s2.cfg.FromBlock = st.From
		off, _ := s2.Offset()
		return off
	}
	for _, tc := range []struct {
		name string
		off  []byte
	}{
		{"empty", nil},
		{"version 2", []byte{2, '{', '}'}},
		{"not JSON", []byte{1, 'x'}},
		{"other first block", enc(func(st *offsetState) { st.From = 9 })},
		{"broken parent link", enc(func(st *offsetState) { st.Ring[1].Parent = common.HexToHash("0x09") })},
		{"gap", enc(func(st *offsetState) { st.Ring[1].Number = 13; st.Next = 14 })},
		{"next not after ring", enc(func(st *offsetState) { st.Next = 20 })},
		{"too many blocks", enc(func(st *offsetState) {
			for i := range 4 {
				last := st.Ring[len(st.Ring)-1]
				st.Ring = append(st.Ring, block{Number: last.Number + 1, Hash: common.BigToHash(big.NewInt(int64(50 + i))), Parent: last.Hash})
			}
			st.Next = st.Ring[len(st.Ring)-1].Number + 1
		})},
		{"record without log", enc(func(st *offsetState) { st.Queue = append(st.Queue, queued{Kind: stream.Insert}) })},
		{"bad kind", enc(func(st *offsetState) { st.Queue[0].Kind = 7 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Seek(tc.off); err == nil {
				t.Errorf("Seek accepted a bad offset")
			}
		})
	}
}

// FuzzSeek: no input makes Seek panic, and what it accepts encodes back to an offset it
// accepts again.
func FuzzSeek(f *testing.F) {
	s := testOffsetSplit(f)
	s.ring, s.queue = sampleState()
	s.next = 12
	off, _ := s.Offset()
	f.Add(off)
	f.Add([]byte{1, '{', '}'})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, off []byte) {
		s := testOffsetSplit(t)
		if err := s.Seek(off); err != nil {
			return
		}
		again, err := s.Offset()
		if err != nil {
			t.Fatal(err)
		}
		if err := testOffsetSplit(t).Seek(again); err != nil {
			t.Fatalf("an accepted offset re-encodes to one Seek refuses: %v", err)
		}
	})
}
