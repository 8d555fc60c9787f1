package cluster

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// URLs
	_ "gocloud.dev/blob/s3blob"   // s3:// URLs

	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/persistence/bucketsink"
	"github.com/eddyflow/eddy/stream"
)

// Store is where a clustered job keeps what must outlive its nodes: its checkpoints, the
// fence of its runs and its committed output. It is either an object store (a bucket: S3 or
// S3-compatible, or file:// for nodes on one machine), which nodes that share nothing else
// reach, and whose runs are fenced by epoch with conditional writes; or a directory every
// node mounts (one machine, or a shared file system), fenced by DirFence.
type Store struct {
	where  string // names the store in messages, without a URL's query
	prefix string

	// In a bucket:
	bucket *blob.Bucket
	fenced *persistence.FencedCheckpoints

	// In a directory:
	dir  string
	dirs *persistence.DirCheckpoints
}

// OpenStore opens the store at where, a directory or a bucket's URL, with what it keeps
// under prefix (empty, or ending in "/"; in a directory, a subdirectory):
//
//	/mnt/shared/eddy                                                   a directory every node reaches
//	s3://eddy?endpoint=http://10.0.0.5:8333&use_path_style=true&region=us-east-1   an S3-compatible server
//	s3://eddy?region=eu-west-1&prefix=jobs/sensors/                    AWS S3, under a prefix
//	file:///var/eddy                                                   a bucket in a local directory (one machine)
//
// In a bucket the store holds PREFIX fence (the runs' epochs and the lineage of committed
// checkpoints), PREFIX checkpoints/ and what JSONLSink writes. The caller closes it.
func OpenStore(ctx context.Context, where, prefix string) (*Store, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("open store: prefix %q must be empty or end in /", prefix)
	}
	name, _, _ := strings.Cut(where, "?")
	s := &Store{where: name, prefix: prefix}
	if !strings.Contains(where, "://") {
		s.dir = filepath.Join(where, filepath.FromSlash(prefix))
		dirs, err := persistence.OpenDirCheckpoints(s.dir)
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", name, err)
		}
		s.dirs = dirs
		return s, nil
	}
	bucket, err := blob.OpenBucket(ctx, where)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", name, err)
	}
	fence := persistence.NewBucketFence(bucket, prefix+"fence", name)
	if u, err := neturl.Parse(where); err == nil && u.Scheme == "file" {
		// A local directory has no conditional writes: a file lock makes each
		// read-compare-write of the fence one critical section (nodes on one machine).
		dir := filepath.Join(filepath.FromSlash(u.Path), filepath.FromSlash(u.Query().Get("prefix")), filepath.FromSlash(prefix))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			bucket.Close()
			return nil, fmt.Errorf("open store %s: %w", name, err)
		}
		fence = persistence.NewLockedBucketFence(bucket, prefix+"fence", name, filepath.Join(dir, "fence.lock"))
	}
	fenced, err := persistence.NewFencedCheckpoints(bucket, prefix, name, fence)
	if err != nil {
		bucket.Close()
		return nil, fmt.Errorf("open store %s: %w", name, err)
	}
	s.bucket, s.fenced = bucket, fenced
	return s, nil
}

// String names the store (without a URL's query, which may hold credentials).
func (s *Store) String() string { return s.where + "/" + s.prefix }

// InBucket reports whether the store is an object store (runs fenced by epoch) rather than
// a directory.
func (s *Store) InBucket() bool { return s.bucket != nil }

// Checkpoints returns the store's checkpoint store, for graph.Checkpoints.
func (s *Store) Checkpoints() persistence.CheckpointStore {
	if s.fenced != nil {
		return s.fenced
	}
	return s.dirs
}

// Fence returns the fence of the store's runs in a bucket (NodeConfig.Fence), nil in a
// directory (whose fence is NodeConfig.FenceDir: the directory).
func (s *Store) Fence() RunFence {
	if s.fenced == nil {
		return nil
	}
	return s.fenced
}

// configure sets the node's fence: the bucket's epochs, or a DirFence in the directory.
func (s *Store) configure(nc *NodeConfig) {
	if s.fenced != nil {
		nc.Fence, nc.FenceDir = s.fenced, ""
		return
	}
	nc.Fence, nc.FenceDir = nil, s.dir
}

// Close closes the store's bucket.
func (s *Store) Close() error {
	if s.bucket != nil {
		return s.bucket.Close()
	}
	return nil
}

// JSONLSink returns a two-phase sink that writes each record's value as a line of JSON
// into the store under name (such as "out"), exactly once per checkpoint: in a bucket,
// bucketsink.JSONL with its commits fenced by the run's epoch (committed objects
// PREFIX name/part-c<checkpoint>-i<instance>.jsonl); in a directory,
// stream.TwoPhaseJSONLSink in DIR/PREFIX/name. Every node's instances write there: the
// union is the job's output. Call it for each run (in RunGraph's newGraph).
func JSONLSink[T any](s *Store, name string) (stream.TwoPhaseSink[T], error) {
	if name == "" || strings.ContainsAny(name, `\`) || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
		return nil, fmt.Errorf("output %q in store %s: want a relative name such as \"out\"", name, s)
	}
	name = strings.TrimSuffix(name, "/")
	if s.bucket != nil {
		return bucketsink.JSONL[T](s.bucket, s.prefix+name+"/", s.where, s.fenced), nil
	}
	if s.dirs == nil {
		return nil, errors.New("output: the store is not open")
	}
	sink, err := stream.TwoPhaseJSONLSink[T](filepath.Join(s.dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, fmt.Errorf("output %q in store %s: %w", name, s, err)
	}
	return sink, nil
}
