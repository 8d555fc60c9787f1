package cluster

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/admin"
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

// AdminHandler serves a node's admin endpoints (internal/admin's, for the stages of the
// node's current run), all GET and all JSON except /metrics:
//
//   - /members: the live members, sorted by node ID.
//   - /placement: the epoch, the nodes, and which key groups each node owns, for the jobs
//     named in the placement or in ?job= (repeatable, with ?key_groups= to override).
//     One request lists at most maxPlacementJobs jobs and maxPlacementKeyGroups key
//     groups in all, so that it cannot make the node compute and send tables without
//     bound (the query string itself is bounded to 1 KiB).
//   - /stages: every stage's counters, with records/s over the last 10 s (since the
//     oldest call in that window; rate_window_s is 0 on the first call), and each
//     instance's.
//   - /cluster/stages: the same for the whole cluster: this node asks every member's
//     /stages (at its admin address) and adds them up, so one address shows the whole job.
//   - /state/{stage}?key=K: the state of key K in a keyed stage of the node's run, from
//     whichever node owns K (this node forwards the query to the owner's admin address);
//     /state/{stage}?prefix=P&from=A&to=B&limit=N: a scan, fanned out to every node and
//     merged in key order (Node.QueryState and Node.ScanState; admin.StateView and
//     admin.ScanView are the JSON).
//   - /metrics: Prometheus metrics from a registry of its own: stage counters and gauges,
//     cluster gauges, and the Go runtime's and the process's.
func AdminHandler(src AdminSource) http.Handler {
	return admin.Handler(src, admin.Options{
		Routes: map[string]http.HandlerFunc{
			"/members": func(w http.ResponseWriter, r *http.Request) {
				admin.WriteJSON(w, http.StatusOK, src.Members())
			},
			"/placement": func(w http.ResponseWriter, r *http.Request) {
				p := src.Placement()
				if p == nil {
					admin.WriteError(w, http.StatusServiceUnavailable, "no placement yet")
					return
				}
				view, err := placementOf(p, r.URL.Query()["job"], r.URL.Query().Get("key_groups"))
				if err != nil {
					admin.WriteError(w, http.StatusBadRequest, err.Error())
					return
				}
				admin.WriteJSON(w, http.StatusOK, view)
			},
			"/cluster/stages": clusterStages(src),
		},
		Collectors: []prometheus.Collector{newCollector(src)},
	})
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

// Bounds of one /placement request: how many jobs it names, how long a name may be, and
// how many key groups its tables list in all (each is a placement look-up and a number in
// the answer). A job has at most maxPlacementKeyGroups key groups.
const (
	maxPlacementJobs      = 8
	maxPlacementJobName   = 256
	maxPlacementKeyGroups = 1 << 16
)

func placementOf(p *Placement, jobs []string, keyGroups string) (PlacementView, error) {
	asked := len(jobs) > 0
	if !asked {
		jobs = p.Jobs() // the placement's own: not the request's to bound
	}
	jobs = slices.Compact(slices.Sorted(slices.Values(jobs)))
	if asked && len(jobs) > maxPlacementJobs {
		return PlacementView{}, fmt.Errorf("%d jobs: at most %d in one request", len(jobs), maxPlacementJobs)
	}
	n := 0
	if keyGroups != "" {
		var err error
		if n, err = strconv.Atoi(keyGroups); err != nil || n < 1 || n > maxPlacementKeyGroups {
			return PlacementView{}, fmt.Errorf("key_groups %q: want a number from 1 to %d", keyGroups, maxPlacementKeyGroups)
		}
	}
	total := 0
	for _, j := range jobs {
		if asked && (j == "" || len(j) > maxPlacementJobName) {
			return PlacementView{}, fmt.Errorf("job name of %d bytes: want 1 to %d", len(j), maxPlacementJobName)
		}
		if n == 0 {
			total += p.KeyGroups(j)
		} else {
			total += n
		}
	}
	if asked && total > maxPlacementKeyGroups {
		return PlacementView{}, fmt.Errorf("%d key groups in all: at most %d in one request", total, maxPlacementKeyGroups)
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
type StageView = admin.StageView

// collector turns an AdminSource's cluster view into Prometheus metrics at every scrape
// (the stage metrics are internal/admin's).
type collector struct {
	src AdminSource

	members, owned, epoch *prometheus.Desc
}

func newCollector(src AdminSource) *collector {
	return &collector{
		src:     src,
		members: prometheus.NewDesc("eddy_cluster_members", "Live members this node sees, itself included.", nil, nil),
		owned: prometheus.NewDesc("eddy_cluster_owned_key_groups", "Key groups of the job this node owns.",
			[]string{"eddy_job"}, nil),
		epoch: prometheus.NewDesc("eddy_cluster_placement_info", "The current placement; its epoch as a label.",
			[]string{"epoch"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.members, c.owned, c.epoch} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
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
type AdminServer = admin.Server

// ServeAdmin listens on addr and serves h until ctx ends or Close is called. A host left
// out (":9090", or addr "") means 127.0.0.1: the admin endpoints are on loopback unless
// an address says otherwise ("0.0.0.0:9090"); port 0 picks a free port (Addr tells which).
func ServeAdmin(ctx context.Context, addr string, h http.Handler) (*AdminServer, error) {
	return admin.Serve(ctx, addr, h)
}
