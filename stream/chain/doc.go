// Package chain is Eddy's chain re-org stage: a source that follows an Ethereum-compatible
// node, fetches the logs of each new block, decodes them with ABIs and, when a re-org
// orphans blocks it has already emitted, emits a stream.Retract record for every record of
// those blocks (newest block first) before the inserts of the new canonical blocks. Windows
// and aggregates downstream apply the retractions, so a per-minute volume ends up equal to
// the canonical chain's, not silently wrong.
//
// How it follows the chain:
//   - heads: an eth_subscribe newHeads subscription over the first WebSocket endpoint;
//     polling (eth_getBlockByNumber "latest") when there is none, when it drops, and right
//     after (re)subscribing, so that nothing that passed meanwhile is missed;
//   - blocks: headers by number, then eth_getLogs by block hash (filtered by Addresses and
//     Topics), in JSON-RPC batches of BatchSize, Concurrency batches at a time during
//     catch-up, handed on in block order;
//   - endpoints: calls rotate to the next endpoint on failure, with exponential backoff and
//     full jitter; after RetryLimit of failures the source fails with an error naming them;
//   - re-orgs: the last MaxReorgDepth emitted blocks (number, hash, parent, logs) are kept;
//     a block whose parent is not the last emitted one, or a last emitted block no longer
//     canonical, starts a walk back to the common ancestor. Deeper than MaxReorgDepth is
//     ErrReorgTooDeep;
//   - confirmations: with Confirmations = C a block is emitted once C blocks are on top of
//     it, so re-orgs of depth ≤ C never reach the output;
//   - checkpoints: the split rewinds (Offset, Seek); its offset (versioned) holds the next
//     block, the kept blocks and what was read but not handed on. After a restart the last
//     kept block is checked against the canonical chain first, and what a re-org changed
//     while the job was down is retracted.
//
// Records carry the block time (ms) as event time; the watermark is the time of the newest
// block that has left the re-org window, since no retraction can reach back past it. An
// event's identity is (BlockHash, LogIndex). Logs no ABI of the Decoder matches go to the
// dead letters.
//
// The smallest use, per-token one-minute volumes of ERC-20 transfers:
//
//	g := graph.New("volumes")
//	events := graph.From(g, chain.Source(chain.Config{
//		Endpoints: []string{"ws://127.0.0.1:8546", "http://127.0.0.1:8545"},
//		Addresses: []common.Address{token},
//		Topics:    [][]common.Hash{{chain.TransferTopic}},
//	}))
//	transfers := graph.FlatMap(events, func(e chain.Event, emit func(chain.Transfer)) {
//		if t, ok := chain.AsTransfer(e); ok {
//			emit(t)
//		}
//	})
//	perToken := graph.KeyBy(transfers, func(t chain.Transfer) string { return t.Token.Hex() },
//		graph.WithCodec(stream.JSON[chain.Transfer]()))
//	graph.Window(perToken, stream.Tumbling(time.Minute), chain.VolumeOf()).To(sink)
package chain
