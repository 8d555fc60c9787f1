package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eddyflow/eddy/actor"
)

// AdminSource is what the admin endpoints show: this node's view of the cluster and the
// counters of the stages it runs.
type AdminSource interface {
	// Members returns the live members (Members.Members).
	Members() []Member
	// Placement returns the current placement, or nil before there is one.
	Placement() *Placement
	// Stats returns a snapshot of every stage's counters; stage names are unique.
	Stats() []actor.StageStats
}

// rateWindow is how far back /stages looks for the counters it computes rates against.
const rateWindow = 10 * time.Second

// AdminHandler serves a node's admin endpoints, all GET and all JSON except /metrics:
//
//   - /members: the live members, sorted by node ID.
//   - /placement: the epoch, the nodes, and which key groups each node owns, for the jobs
//     named in the placement or in ?job= (repeatable, with ?key_groups= to override).
//   - /stages: every stage's counters, with records/s over the last 10 s (since the
//     oldest call in that window; rate_window_s is 0 on the first call).
//   - /metrics: Prometheus metrics from a registry of its own: stage counters and gauges,
//     cluster gauges, and the Go runtime's and the process's.
func AdminHandler(src AdminSource) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(src),
	)
	rates := &rateTracker{window: rateWindow}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, src.Members())
	})
	mux.HandleFunc("GET /placement", func(w http.ResponseWriter, r *http.Request) {
		p := src.Placement()
		if p == nil {
			http.Error(w, "no placement yet", http.StatusServiceUnavailable)
			return
		}
		view, err := placementOf(p, r.URL.Query()["job"], r.URL.Query().Get("key_groups"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, view)
	})
	mux.HandleFunc("GET /stages", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, rates.observe(time.Now(), src.Stats()))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v) // an error: the client went away; nothing to tell it
}

// PlacementView is the JSON of /placement.
type PlacementView struct {
	Epoch Epoch     `json:"epoch"`
	Self  string    `json:"self"`
	Nodes []string  `json:"nodes"`
	Jobs  []JobView `json:"jobs"`
}

// JobView is one job's key groups by owning node.
type JobView struct {
	Job       string           `json:"job"`
	KeyGroups int              `json:"key_groups"`
	Owners    map[string][]int `json:"owners"`
}

func placementOf(p *Placement, jobs []string, keyGroups string) (PlacementView, error) {
	if len(jobs) == 0 {
		jobs = p.Jobs()
	}
	n := 0
	if keyGroups != "" {
		var err error
		if n, err = strconv.Atoi(keyGroups); err != nil || n < 1 || n > 1<<16 {
			return PlacementView{}, fmt.Errorf("key_groups %q: want a number from 1 to 65536", keyGroups)
		}
	}
	v := PlacementView{Epoch: p.Epoch(), Self: p.Self(), Nodes: p.Nodes(), Jobs: []JobView{}}
	for _, j := range jobs {
		kg := n
		if kg == 0 {
			kg = p.KeyGroups(j)
		}
		v.Jobs = append(v.Jobs, JobView{Job: j, KeyGroups: kg, Owners: p.Table(j, kg)})
	}
	return v, nil
}

// StageView is one stage in the JSON of /stages: its counters and their rates.
type StageView struct {
	actor.StageStats
	// RateWindow is the time the rates are computed over, in seconds; 0 when there is no
	// earlier snapshot yet (and the rates are 0).
	RateWindow float64 `json:"rate_window_s"`
	InRate     float64 `json:"in_per_s"`
	OutRate    float64 `json:"out_per_s"`
	DeadRate   float64 `json:"dead_letters_per_s"`
	LateRate   float64 `json:"late_per_s"`
}

// rateTracker keeps recent snapshots of the stage counters to compute rates against.
type rateTracker struct {
	window time.Duration

	// mu guards samples.
	mu      sync.Mutex
	samples []rateSample // ascending by at
}

type rateSample struct {
	at     time.Time
	counts map[string][4]int64 // stage → in, out, dead letters, late
}

// maxSamples bounds the snapshots kept, however often /stages is called.
const maxSamples = 64

// observe records stats as taken at now and returns them with rates since the oldest
// snapshot within the window, or if none is, since the newest before it. A counter that went
// down (the job restarted) counts from 0.
func (t *rateTracker) observe(now time.Time, stats []actor.StageStats) []StageView {
	cur := rateSample{at: now, counts: make(map[string][4]int64, len(stats))}
	for _, s := range stats {
		cur.counts[s.Stage] = [4]int64{s.In, s.Out, s.DeadLetters, s.Late}
	}

	t.mu.Lock()
	base := -1
	for i, s := range t.samples {
		if now.Sub(s.at) <= t.window {
			base = i
			break
		}
		base = i // the newest so far older than the window
	}
	var from *rateSample
	if base >= 0 {
		t.samples = t.samples[base:]
		if now.After(t.samples[0].at) {
			from = &rateSample{at: t.samples[0].at, counts: t.samples[0].counts}
		}
	}
	t.samples = append(t.samples, cur)
	if len(t.samples) > maxSamples {
		t.samples = t.samples[len(t.samples)-maxSamples:]
	}
	t.mu.Unlock()

	out := make([]StageView, len(stats))
	for i, s := range stats {
		out[i] = StageView{StageStats: s}
		if from == nil {
			continue
		}
		dt := now.Sub(from.at).Seconds()
		prev, last := from.counts[s.Stage], cur.counts[s.Stage]
		var r [4]float64
		for k := range r {
			d := last[k] - prev[k]
			if d < 0 {
				d = last[k]
			}
			r[k] = float64(d) / dt
		}
		out[i].RateWindow = dt
		out[i].InRate, out[i].OutRate, out[i].DeadRate, out[i].LateRate = r[0], r[1], r[2], r[3]
	}
	return out
}

// collector turns an AdminSource into Prometheus metrics at every scrape.
type collector struct {
	src AdminSource

	in, out, dead, late, restarts, batches, backpressure, alignment *prometheus.Desc
	watermark, lag, queued, instances                               *prometheus.Desc
	members, owned, epoch                                           *prometheus.Desc
}

func newCollector(src AdminSource) *collector {
	stage := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("eddy_stage_"+name, help, []string{"stage"}, nil)
	}
	return &collector{
		src:          src,
		in:           stage("records_in_total", "Records the stage took in."),
		out:          stage("records_out_total", "Records the stage sent on or wrote to sinks."),
		dead:         stage("dead_letters_total", "Records the stage sent to the dead-letter output."),
		late:         stage("late_records_total", "Records too late for every window they belong to."),
		restarts:     stage("restarts_total", "Stage restarts (error policy restart-stage)."),
		batches:      stage("batches_total", "Batches the stage sent."),
		backpressure: stage("backpressure_seconds_total", "Time instances spent without credit."),
		alignment:    stage("alignment_seconds_total", "Time instances spent aligning checkpoint barriers."),
		watermark:    stage("watermark_seconds", "Lowest input watermark of the stage's instances, Unix seconds (+Inf once inputs ended); absent until every instance has one."),
		lag:          stage("watermark_lag_seconds", "How far the watermark is behind processing time."),
		queued:       stage("max_queued_batches", "Most batches any instance held received and not yet processed."),
		instances:    stage("instances", "Instances (actors) of the stage."),
		members:      prometheus.NewDesc("eddy_cluster_members", "Live members this node sees, itself included.", nil, nil),
		owned: prometheus.NewDesc("eddy_cluster_owned_key_groups", "Key groups of the job this node owns.",
			[]string{"eddy_job"}, nil),
		epoch: prometheus.NewDesc("eddy_cluster_placement_info", "The current placement; its epoch as a label.",
			[]string{"epoch"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.in, c.out, c.dead, c.late, c.restarts, c.batches,
		c.backpressure, c.alignment, c.watermark, c.lag, c.queued, c.instances,
		c.members, c.owned, c.epoch} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.src.Stats() {
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, s.Stage)
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, s.Stage)
		}
		counter(c.in, float64(s.In))
		counter(c.out, float64(s.Out))
		counter(c.dead, float64(s.DeadLetters))
		counter(c.late, float64(s.Late))
		counter(c.restarts, float64(s.Restarts))
		counter(c.batches, float64(s.Batches))
		counter(c.backpressure, s.Backpressure.Seconds())
		counter(c.alignment, s.Alignment.Seconds())
		gauge(c.queued, float64(s.MaxQueued))
		gauge(c.instances, float64(s.Instances))
		if s.HasWatermark {
			w := math.Inf(1)
			if s.Watermark != actor.MaxWatermark {
				w = float64(s.Watermark) / 1e3
				gauge(c.lag, s.WatermarkLag.Seconds())
			}
			gauge(c.watermark, w)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(len(c.src.Members())))
	if p := c.src.Placement(); p != nil {
		ch <- prometheus.MustNewConstMetric(c.epoch, prometheus.GaugeValue, 1, p.Epoch().String())
		for _, job := range p.Jobs() {
			owned := len(p.Table(job, p.KeyGroups(job))[p.Self()])
			ch <- prometheus.MustNewConstMetric(c.owned, prometheus.GaugeValue, float64(owned), job)
		}
	}
}

// AdminServer serves an admin handler until its context ends or Close is called.
type AdminServer struct {
	addr   net.Addr
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error // of Serve, other than ErrServerClosed; read after wg.Wait
}

// ServeAdmin listens on addr and serves h until ctx ends or Close is called. A host left
// out (":9090", or addr "") means 127.0.0.1: the admin endpoints are on loopback unless
// an address says otherwise ("0.0.0.0:9090"); port 0 picks a free port (Addr tells which).
func ServeAdmin(ctx context.Context, addr string, h http.Handler) (*AdminServer, error) {
	if addr == "" {
		addr = ":0"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("serve admin on %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("serve admin: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s := &AdminServer{addr: ln.Addr(), cancel: cancel}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = fmt.Errorf("serve admin on %s: %w", ln.Addr(), err)
			cancel()
		}
	}()
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		// Requests in flight get a moment to finish; then they are cut.
		sctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
		defer stop()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *AdminServer) Addr() net.Addr { return s.addr }

// Close stops the server and waits for it to finish; it returns the error that stopped it
// early, if any. Safe to call more than once.
func (s *AdminServer) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.err
}
