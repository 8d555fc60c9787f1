package chain_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/eddyflow/eddy/stream/chain"
)

// tcpProxy forwards TCP connections to a target and can cut them all (and refuse new ones)
// to play a node whose WebSocket goes away.
type tcpProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	// mu guards conns and down.
	mu    sync.Mutex
	conns []net.Conn
	down  bool
}

func startTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// cut closes every connection and refuses new ones until restore.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// logCapture keeps the messages a logger writes.
type logCapture struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

func (l *logCapture) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// followThrough runs the transfer job over blocks first..first+blocks with cfg, calls
// trouble(i) before block i, and checks the output against the canonical chain.
func followThrough(t *testing.T, c *testChain, cfg chain.Config, blocks uint64, trouble func(i uint64)) *transferJob {
	t.Helper()
	cfg.Addresses, cfg.Topics = c.tokens, [][]common.Hash{{chain.TransferTopic}}
	cfg.FromBlock, cfg.UntilBlock, cfg.HasUntil = c.first, c.first+blocks, true
	cfg.PollInterval = 10 * time.Millisecond
	j := runTransferJob(t, cfg)
	for i := uint64(0); c.head() < cfg.UntilBlock; i++ {
		trouble(i)
		c.block()
		time.Sleep(time.Duration(c.rng.IntN(15)) * time.Millisecond) // blocks at a pace, not in a burst
	}
	select {
	case err := <-j.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the job did not end after the last block")
	}
	want, _ := canonical(t, c.HTTP, c.tokens, cfg.FromBlock, cfg.UntilBlock)
	live, _ := applyRetractions(t, j.records())
	checkSame(t, live, want)
	return j
}

// A node whose WebSocket drops mid-run: the source falls back to polling over the HTTP
// endpoint, subscribes again once the WebSocket is back, and misses no block.
func TestWebSocketDropFallsBackToPolling(t *testing.T) {
	c := startChain(t, 7)
	u, err := url.Parse(c.WS)
	if err != nil {
		t.Fatal(err)
	}
	p := startTCPProxy(t, u.Host)
	logs := &logCapture{}
	cfg := chain.Config{Endpoints: []string{"ws://" + p.ln.Addr().String(), c.HTTP}, Logger: slog.New(logs), ResubscribeInterval: 200 * time.Millisecond}
	followThrough(t, c, cfg, 60, func(i uint64) {
		switch i {
		case 15:
			p.cut()
		case 30:
			c.reorg(3) // while it polls
		case 40:
			p.restore()
		}
	})
	if logs.count("chain: new-heads subscription dropped; polling") == 0 {
		t.Error("the subscription never dropped: the test did not test the fallback")
	}
	if logs.count("chain: subscribed to new heads again") == 0 {
		t.Error("the source did not subscribe again after the WebSocket came back")
	}
}

// flakyHTTP forwards JSON-RPC to a node, or answers 503 while failing is set.
func flakyHTTP(t testing.TB, target string) (*httptest.Server, *atomic.Bool) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "node unavailable", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &failing
}

// An endpoint that returns errors for a while: the source retries with backoff and goes on,
// and nothing is lost.
func TestFailingEndpointIsRetried(t *testing.T) {
	c := startChain(t, 11)
	srv, failing := flakyHTTP(t, c.HTTP)
	logs := &logCapture{}
	cfg := chain.Config{Endpoints: []string{srv.URL}, Logger: slog.New(logs), RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	followThrough(t, c, cfg, 50, func(i uint64) {
		switch i {
		case 10:
			failing.Store(true)
		case 25:
			failing.Store(false)
		}
	})
	if logs.count("chain: call failed, retrying") == 0 {
		t.Error("no call failed: the test did not test the retries")
	}
}

// Every endpoint down past RetryLimit: the job fails with an error that says so.
func TestEndpointsDownPastLimitFail(t *testing.T) {
	c := startChain(t, 13)
	srv, failing := flakyHTTP(t, c.HTTP)
	failing.Store(true)
	j := runTransferJob(t, chain.Config{Endpoints: []string{srv.URL}, Logger: slog.New(slog.DiscardHandler),
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, RetryLimit: 300 * time.Millisecond})
	select {
	case err := <-j.done:
		if err == nil || !strings.Contains(err.Error(), "every endpoint") || !strings.Contains(err.Error(), "503") {
			t.Fatalf("job ended with %v, want the endpoints-down error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the job did not fail with every endpoint down")
	}
}
