package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eddyflow/eddy/actor"
)

// Stages is what every admin endpoint shows: the counters of the stages that run here.
type Stages interface {
	// Stats returns a snapshot of every stage's counters; stage names are unique.
	Stats() []actor.StageStats
}

// Job is what a job adds, when the source implements it: /status, /topology and
// /checkpoints.
type Job interface {
	Stages
	// Status says whether the job runs, and how it ended.
	Status() Status
	// Ended is closed once the job has ended (a waiting /status answers then).
	Ended() <-chan struct{}
	// Topology is the job's plan, as /topology shows it (graph.Description).
	Topology() any
	// Checkpoints returns the checkpoint counters and the recent checkpoints, oldest first.
	Checkpoints() (actor.CheckpointStats, []actor.CheckpointRecord)
}

// Status is the JSON of /status.
type Status struct {
	Job string `json:"job"`
	// State is "running", "finished", "failed" or "cancelled".
	State   string     `json:"state"`
	Error   string     `json:"error,omitempty"`
	Started time.Time  `json:"started"`
	Ended   *time.Time `json:"ended,omitempty"`
}

// CheckpointsView is the JSON of /checkpoints.
type CheckpointsView struct {
	actor.CheckpointStats
	History []actor.CheckpointRecord `json:"history"`
}

// Options adds to the handler what a cluster node has besides a job.
type Options struct {
	// Routes are more paths (a pattern without the method, e.g. "/members"), served GET.
	Routes map[string]http.HandlerFunc
	// Collectors are more Prometheus collectors for /metrics.
	Collectors []prometheus.Collector
}

// rateWindow is how far back /stages looks for the counters it computes rates against.
const rateWindow = 10 * time.Second

// maxWait bounds how long GET /status?wait=D may wait.
const maxWait = time.Minute

// maxQuery bounds a request's query string.
const maxQuery = 1 << 10

// Handler serves src's admin endpoints:
//
//   - /stages: every stage's counters, with records/s over the last 10 s (since the oldest
//     call in that window; rate_window_s is 0 on the first call), the share of wall time
//     its instances spent back-pressured, and the same for each instance.
//   - /metrics: Prometheus metrics from a registry of its own: stage counters and gauges,
//     those of opts.Collectors, and the Go runtime's and the process's.
//   - with a Job: /status (?wait=5s waits that long for the job to end), /topology and
//     /checkpoints.
//   - with a StateQuery: /state/{stage}?key=K, a point query (StateView), and
//     /state/{stage}?prefix=P&from=A&to=B&limit=N, a scan (ScanView); 404 for an unknown
//     stage or a key without state, 400 for a bad request (a stage without keyed state, a
//     key that does not parse, a stage that cannot be scanned, a limit above the most),
//     503 when the job cannot answer now.
//   - opts.Routes.
func Handler(src Stages, opts Options) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		stageCollector{src, newStageDescs()},
	)
	for _, c := range opts.Collectors {
		reg.MustRegister(c)
	}
	rates := &rateTracker{window: rateWindow}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stages", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, rates.observe(time.Now(), src.Stats()))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if job, ok := src.(Job); ok {
		mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
			if q := r.URL.Query().Get("wait"); q != "" {
				d, err := time.ParseDuration(q)
				if err != nil || d < 0 {
					WriteError(w, http.StatusBadRequest, fmt.Sprintf("wait %q: want a duration such as 5s", q))
					return
				}
				t := time.NewTimer(min(d, maxWait))
				select {
				case <-job.Ended():
				case <-t.C:
				case <-r.Context().Done():
				}
				t.Stop()
			}
			WriteJSON(w, http.StatusOK, job.Status())
		})
		mux.HandleFunc("GET /topology", func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, http.StatusOK, job.Topology())
		})
		mux.HandleFunc("GET /checkpoints", func(w http.ResponseWriter, r *http.Request) {
			st, h := job.Checkpoints()
			if h == nil {
				h = []actor.CheckpointRecord{}
			}
			WriteJSON(w, http.StatusOK, CheckpointsView{st, h})
		})
	}
	if q, ok := src.(StateQuery); ok {
		mux.HandleFunc("GET /state/{stage}", serveState(q))
	}
	for pattern, h := range opts.Routes {
		mux.HandleFunc("GET "+pattern, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, fmt.Sprintf("no such path %q", r.URL.Path))
	})
	return bounded(mux)
}

// bounded refuses what could make the server allocate without limit: a body, or a long
// query string. (Headers are bounded by the server.)
func bounded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 0 {
			WriteError(w, http.StatusRequestEntityTooLarge, "the admin endpoint takes no request body")
			return
		}
		if len(r.URL.RawQuery) > maxQuery {
			WriteError(w, http.StatusRequestURITooLong, fmt.Sprintf("query string of %d bytes; at most %d", len(r.URL.RawQuery), maxQuery))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 0)
		h.ServeHTTP(w, r)
	})
}

// WriteJSON writes v as the JSON answer, with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // an error: the client went away; nothing to tell it
}

// WriteError writes {"error": msg} with status code.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, map[string]string{"error": msg})
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
	// Backpressured is the share of wall time (0 to 1) the stage's instances spent
	// without credit over the window, averaged over them.
	Backpressured float64 `json:"backpressured"`
	// InstanceRates holds each instance's rates, in index order (PerInstance's).
	InstanceRates []InstanceRates `json:"instance_rates"`
}

// InstanceRates is one instance's rates over the window.
type InstanceRates struct {
	Index         int     `json:"index"`
	InRate        float64 `json:"in_per_s"`
	OutRate       float64 `json:"out_per_s"`
	Backpressured float64 `json:"backpressured"`
}

// rateTracker keeps recent snapshots of the stage counters to compute rates against.
type rateTracker struct {
	window time.Duration

	// mu guards samples.
	mu      sync.Mutex
	samples []rateSample // ascending by at
}

// counts are one stage's counters at a sample: in, out, dead letters, late, back-pressure
// ns; then in, out, back-pressure ns per instance.
type counts struct {
	stage     [5]int64
	instances [][3]int64
}

type rateSample struct {
	at     time.Time
	counts map[string]counts
}

// maxSamples bounds the snapshots kept, however often /stages is called.
const maxSamples = 64

// observe records stats as taken at now and returns them with rates since the oldest
// snapshot within the window, or if none is, since the newest before it. A counter that went
// down (the job restarted) counts from 0.
func (t *rateTracker) observe(now time.Time, stats []actor.StageStats) []StageView {
	cur := rateSample{at: now, counts: make(map[string]counts, len(stats))}
	for _, s := range stats {
		c := counts{stage: [5]int64{s.In, s.Out, s.DeadLetters, s.Late, int64(s.Backpressure)}}
		for _, is := range s.PerInstance {
			c.instances = append(c.instances, [3]int64{is.In, is.Out, int64(is.Backpressure)})
		}
		cur.counts[s.Stage] = c
	}

	t.mu.Lock()
	base := -1
	for i, s := range t.samples {
		base = i
		if now.Sub(s.at) <= t.window {
			break
		}
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
		out[i] = StageView{StageStats: s, InstanceRates: []InstanceRates{}}
		if from == nil {
			for j := range s.PerInstance {
				out[i].InstanceRates = append(out[i].InstanceRates, InstanceRates{Index: j})
			}
			continue
		}
		dt := now.Sub(from.at).Seconds()
		rate := func(last, prev int64) float64 {
			d := last - prev
			if d < 0 {
				d = last
			}
			return float64(d) / dt
		}
		prev, last := from.counts[s.Stage], cur.counts[s.Stage]
		out[i].RateWindow = dt
		out[i].InRate = rate(last.stage[0], prev.stage[0])
		out[i].OutRate = rate(last.stage[1], prev.stage[1])
		out[i].DeadRate = rate(last.stage[2], prev.stage[2])
		out[i].LateRate = rate(last.stage[3], prev.stage[3])
		if s.Instances > 0 {
			out[i].Backpressured = share(rate(last.stage[4], prev.stage[4]) / 1e9 / float64(s.Instances))
		}
		for j, li := range last.instances {
			var pi [3]int64
			if j < len(prev.instances) {
				pi = prev.instances[j]
			}
			out[i].InstanceRates = append(out[i].InstanceRates, InstanceRates{Index: j,
				InRate: rate(li[0], pi[0]), OutRate: rate(li[1], pi[1]), Backpressured: share(rate(li[2], pi[2]) / 1e9)})
		}
	}
	return out
}

// share clamps a share of time to [0, 1]: clocks read at slightly different moments.
func share(x float64) float64 { return math.Max(0, math.Min(1, x)) }

// stageDescs are the Prometheus descriptions of the stage metrics.
type stageDescs struct {
	in, out, dead, late, restarts, batches, backpressure, alignment *prometheus.Desc
	watermark, lag, queued, maxQueued, credits, instances           *prometheus.Desc
}

func newStageDescs() stageDescs {
	stage := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("eddy_stage_"+name, help, []string{"stage"}, nil)
	}
	return stageDescs{
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
		queued:       stage("queued_batches", "Batches the stage's instances hold received and not yet processed, now."),
		maxQueued:    stage("max_queued_batches", "Most batches any instance held received and not yet processed."),
		credits:      stage("credits_in_use", "Batches the stage's instances sent and have no credit back for, now."),
		instances:    stage("instances", "Instances (actors) of the stage."),
	}
}

// stageCollector turns the stage counters into Prometheus metrics at every scrape.
type stageCollector struct {
	src Stages
	d   stageDescs
}

func (c stageCollector) Describe(ch chan<- *prometheus.Desc) {
	d := c.d
	for _, x := range []*prometheus.Desc{d.in, d.out, d.dead, d.late, d.restarts, d.batches, d.backpressure,
		d.alignment, d.watermark, d.lag, d.queued, d.maxQueued, d.credits, d.instances} {
		ch <- x
	}
}

func (c stageCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	for _, s := range c.src.Stats() {
		counter := func(desc *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, s.Stage)
		}
		gauge := func(desc *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, s.Stage)
		}
		counter(d.in, float64(s.In))
		counter(d.out, float64(s.Out))
		counter(d.dead, float64(s.DeadLetters))
		counter(d.late, float64(s.Late))
		counter(d.restarts, float64(s.Restarts))
		counter(d.batches, float64(s.Batches))
		counter(d.backpressure, s.Backpressure.Seconds())
		counter(d.alignment, s.Alignment.Seconds())
		gauge(d.queued, float64(s.Queued))
		gauge(d.maxQueued, float64(s.MaxQueued))
		gauge(d.credits, float64(s.CreditsInUse))
		gauge(d.instances, float64(s.Instances))
		if s.HasWatermark {
			w := math.Inf(1)
			if s.Watermark != actor.MaxWatermark {
				w = float64(s.Watermark) / 1e3
				gauge(d.lag, s.WatermarkLag.Seconds())
			}
			gauge(d.watermark, w)
		}
	}
}

// Server serves an admin handler until its context ends or Close is called.
type Server struct {
	addr   net.Addr
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error // of Serve, other than ErrServerClosed; read after wg.Wait
}

// Serve listens on addr and serves h until ctx ends or Close is called. A host left out
// (":9090", or addr "") means 127.0.0.1: the admin endpoint is on loopback unless an
// address says otherwise ("0.0.0.0:9090"); port 0 picks a free port (Addr tells which).
func Serve(ctx context.Context, addr string, h http.Handler) (*Server, error) {
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
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s := &Server{addr: ln.Addr(), cancel: cancel}
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
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops the server and waits for it to finish; it returns the error that stopped it
// early, if any. Safe to call more than once.
func (s *Server) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.err
}
