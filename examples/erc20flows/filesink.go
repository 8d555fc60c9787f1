package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/chain"
)

// outLine is one line of -out.
type outLine struct {
	Op        string `json:"op"`
	Block     uint64 `json:"block"`
	BlockHash string `json:"blockHash"`
	TxHash    string `json:"txHash"`
	LogIndex  uint   `json:"logIndex"`
	Token     string `json:"token"`
	From      string `json:"from"`
	To        string `json:"to"`
	Value     string `json:"value"`
}

func lineOf(r stream.Record[chain.Transfer]) outLine {
	t := r.Value
	return outLine{Op: r.Kind.String(), Block: t.Block, BlockHash: lower(t.BlockHash.Hex()), TxHash: lower(t.TxHash.Hex()), LogIndex: t.LogIndex,
		Token: lower(t.Token.Hex()), From: lower(t.From.Hex()), To: lower(t.To.Hex()), Value: t.Value.String()}
}

func lower(s string) string { return strings.ToLower(s) }

// fileSink is the exactly-once sink of -out: a two-phase sink that keeps its transactions
// in FILE.txn/ (stream.TwoPhaseJSONLSink, committed at checkpoints) and appends each committed
// transaction file to FILE, in commit order. FILE.txn/appended.json records which files are
// in FILE and FILE's length after each, so that a crash in the middle of an append (or a
// recovery that takes committed files back) is repaired by truncating FILE to the last
// length on record and appending again.
type fileSink struct {
	path  string
	txn   string
	inner stream.TwoPhaseSink[outLine]

	// mu guards appended and conversion buffers.
	mu       sync.Mutex
	appended []appendedFile
	lines    []stream.Record[outLine]
}

type appendedFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"` // FILE's length after it
}

func newFileSink(path string) (*fileSink, error) {
	txn := path + ".txn"
	inner, err := stream.TwoPhaseJSONLSink[outLine](txn)
	if err != nil {
		return nil, err
	}
	return &fileSink{path: path, txn: txn, inner: inner}, nil
}

var _ stream.TwoPhaseSink[chain.Transfer] = (*fileSink)(nil)

func (s *fileSink) WriteBatch([]stream.Record[chain.Transfer]) error {
	return errors.New("out sink: WriteBatch has no writer instance")
}

// WriteBatchFor turns transfers into -out lines, the record's kind into "op".
func (s *fileSink) WriteBatchFor(instance int, recs []stream.Record[chain.Transfer]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = s.lines[:0]
	for _, r := range recs {
		s.lines = append(s.lines, stream.Record[outLine]{Value: lineOf(r), Time: r.Time})
	}
	return s.inner.WriteBatchFor(instance, s.lines)
}

func (s *fileSink) PreCommit(instance int, n int64) error { return s.inner.PreCommit(instance, n) }

func (s *fileSink) Commit(n int64) error {
	if err := s.inner.Commit(n); err != nil {
		return err
	}
	return s.appendCommitted()
}

// Recover recovers the inner sink's instances that owns accepts (a job on one node: all),
// then the appended file.
func (s *fileSink) Recover(lastComplete int64, owns func(instance int) bool) error {
	if err := s.inner.Recover(lastComplete, owns); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(s.txn, "appended.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.appended = nil
	case err != nil:
		return fmt.Errorf("out sink: %w", err)
	default:
		if err := json.Unmarshal(b, &s.appended); err != nil {
			return fmt.Errorf("out sink: %s: %w", filepath.Join(s.txn, "appended.json"), err)
		}
	}
	// Files a recovery took back (to .retracted) leave FILE again.
	keep := 0
	for _, a := range s.appended {
		if _, err := os.Stat(filepath.Join(s.txn, a.Name)); err != nil {
			break
		}
		keep++
	}
	s.appended = s.appended[:keep]
	var size int64
	if keep > 0 {
		size = s.appended[keep-1].Size
	}
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("out sink: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		return fmt.Errorf("out sink: truncate %s: %w", s.path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return s.appendCommitted()
}

// appendCommitted appends the committed transaction files not yet in FILE, in order.
func (s *fileSink) appendCommitted() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	names, err := filepath.Glob(filepath.Join(s.txn, "part-*.jsonl"))
	if err != nil {
		return err
	}
	slices.Sort(names)
	done := map[string]bool{}
	for _, a := range s.appended {
		done[a.Name] = true
	}
	var todo []string
	for _, n := range names {
		if !done[filepath.Base(n)] {
			todo = append(todo, n)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	out, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("out sink: %w", err)
	}
	defer out.Close()
	for _, n := range todo {
		in, err := os.Open(n)
		if err != nil {
			return fmt.Errorf("out sink: %w", err)
		}
		_, err = io.Copy(out, in)
		_ = in.Close()
		if err != nil {
			return fmt.Errorf("out sink: append %s: %w", n, err)
		}
		st, err := out.Stat()
		if err != nil {
			return err
		}
		s.appended = append(s.appended, appendedFile{Name: filepath.Base(n), Size: st.Size()})
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("out sink: sync %s: %w", s.path, err)
	}
	// Record what FILE holds only after it is on disk; a crash before leaves FILE longer
	// than the record says, and Recover truncates it back.
	b, err := json.Marshal(s.appended)
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.txn, "appended.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("out sink: %w", err)
	}
	if f, err := os.Open(tmp); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
	return os.Rename(tmp, filepath.Join(s.txn, "appended.json"))
}

func (s *fileSink) Close() error { return s.inner.Close() }
