// Package persistence stores what Eddy's event-sourced state needs to survive a crash: a
// Journal of each identity's events, a SnapshotStore of its snapshots, and a CheckpointStore
// of completed checkpoints and savepoints. Journals and snapshots come in memory
// (MemoryJournal, MemorySnapshots) and Badger (OpenBadger) flavours; checkpoints in a local
// directory (OpenDirCheckpoints) or an object store (BucketCheckpoints: S3 and S3-compatible
// servers through gocloud.dev/blob, whose conditional writes make a checkpoint's creation
// atomic), with BucketFence to claim a run's epoch by compare-and-swap. ActorProvider puts a Journal and a SnapshotStore behind
// Proto.Actor's persistence.Provider, so a plain Proto.Actor actor can be event-sourced too.
//
// An identity is a string such as "job/stage/17" (a stage instance, or one key group of
// it): non-empty, at most 1024 bytes, no NUL byte. Sequence numbers start at 1 and are
// checked, not assigned: each append must be above the identity's HighestSeq, or it fails
// with ErrSeqOrder. A snapshot at seq n holds the state after events 1..n.
//
// # Smallest use
//
//	db, err := persistence.OpenBadger(dir)
//	...
//	defer db.Close()
//	j := db.Journal()
//	err = j.AppendBatch(ctx, []persistence.Event{{Identity: "job/count/17", Seq: 1, Data: ev}})
//	err = db.Snapshots().Save(ctx, "job/count/17", 1, state)
//	// Recovery: the newest intact snapshot, then the journal after it.
//	snap, err := persistence.LoadLatestValid(ctx, persistence.SnapshotsOf(db.Snapshots(), "job/count/17"))
//	err = j.Replay(ctx, "job/count/17", snap.N+1, persistence.MaxSeq, apply)
//
// # Key layout (Badger)
//
// Every key starts with its identity and a NUL byte, so all of one identity's data (journal
// and snapshots) is one key range that can be exported, moved to another node or restored
// on its own; a prefix without the NUL ("job/stage/") selects a whole stage.
//
//	identity 0x00 'e' seq(8 bytes, big-endian)  journal event: frame(event bytes)
//	identity 0x00 'h'                           HighestSeq at the last deletion: frame(seq, 8 bytes)
//	identity 0x00 's' seq(8 bytes, big-endian)  snapshot: frame(snapshot bytes)
//	identity 0x00 'g'                           keyed state's current generation: frame(8 bytes)
//	identity 0x00 'v' gen(8 bytes) key          keyed state value (KeyedValues): frame(value)
//
// Big-endian sequence numbers make Badger's key order the sequence order, so Replay is one
// forward scan that streams from the LSM tree, and HighestSeq one reverse seek. The 'h' key
// keeps HighestSeq (and so the ordering check) after DeleteTo or DeleteAfter removed the
// last events. Keyed state values carry a generation: FreshKeyedValues starts an empty one
// (a restore from a checkpoint) and deletes the older ones, whose keys sort before it, in
// the background.
//
// # Durability and sync policy
//
// Appends are batched: AppendBatch writes any number of events, of any identities, through
// one Badger WriteBatch, atomically while it fits one Badger transaction (with the default
// 64 MiB memtable: about 9.6 MiB and 100,000 entries; a larger batch is split, and a crash
// may keep a prefix of it).
// When a write returns it is in the operating system's page cache, so killing the process
// (SIGKILL, panic) loses nothing. What a power loss or kernel crash may lose depends on
// WithSync:
//
//   - SyncAlways: nothing acknowledged. Every write waits for an fsync (concurrent writers
//     share one), so throughput is bounded by the disk's sync latency; use big batches.
//   - SyncEvery(d), the default with d = 100ms: at most about the last d of writes.
//     Writers never wait for the disk.
//   - SyncNever: whatever the OS had not written back (by default up to ~30 s on Linux).
//
// With SyncEvery or SyncNever, call (*BadgerDB).Sync before declaring durable anything that
// depends on the journal, such as a checkpoint. docs/benchmarks.md ("Persistence") has the cost of each policy.
// Checkpoint and savepoint files are always fsynced (file, then directory) before Write
// returns.
//
// # Corruption
//
// Every journal entry, snapshot and checkpoint file is a frame: a version byte, the payload
// length and a CRC-32C of both and the payload. Reading a frame that is truncated, too long,
// of an unknown version or fails its checksum returns a *CorruptError whose Where names the
// key (`journal entry "job/s/7" seq 2 in badger /data/state`) or file, and whose Reason says
// what was expected. Replay stops there; LoadLatestValid skips corrupt snapshots or
// checkpoints, returns the newest valid one, and lists what it skipped, so recovery can fall
// back to the previous one and report the loss. The decoder is fuzzed:
//
//	go test ./persistence -run '^$' -fuzz FuzzDecode -fuzztime 60s
//
// Corruption inside Badger's own files (tables, value log) is Badger's to detect; the
// frames catch values that are damaged or mixed up between Badger and the application.
//
// # Next
//
// The runtime builds on this: barrier injection and alignment, writing a barrier-n marker
// event into each stage's journal and acknowledging only after (*BadgerDB).Sync, the
// checkpoint coordinator that writes checkpoint n's metadata (source offsets, each stage's
// snapshot and marker seqs) with CheckpointStore.Write and then calls Keep, two-phase-commit
// sinks that commit on checkpoint completion, and recovery: LoadLatestValid on the
// checkpoint store, then for each identity its snapshot, a Replay up to its barrier marker,
// and DeleteAfter the marker to discard what the failed attempt journalled. Exporting and
// importing an identity's key range (for rescaling by key group) is not here yet; the key
// layout is made for it.
package persistence
