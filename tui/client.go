package tui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/admin"
)

// Client reads a job's admin endpoint.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client of the admin endpoint at addr ("127.0.0.1:9090" or a URL).
func NewClient(addr string) *Client {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 40 * time.Second}}
}

// Addr returns the endpoint's base URL.
func (c *Client) Addr() string { return c.base }

// maxAnswer bounds what is read of one answer.
const maxAnswer = 32 << 20

// errNotServed says the endpoint does not serve a path (a 404): a single job has no
// /members.
var errNotServed = errors.New("not served")

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		err := fmt.Errorf("GET %s: %s: %s", path, resp.Status, e.Error)
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %w", errNotServed, err)
		}
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// Snapshot is one reading of every admin path.
type Snapshot struct {
	At          time.Time
	Status      admin.Status
	Topology    graph.Description
	Stages      []admin.StageView
	Checkpoints admin.CheckpointsView
	// Members and Placement are there on a cluster node only.
	Members   []Member
	Placement *Placement
}

// Member is a cluster member as /members shows it.
type Member struct {
	NodeID string `json:"node_id"`
	Addr   string `json:"addr"`
}

// Placement is /placement: which key groups each node owns.
type Placement struct {
	Epoch any      `json:"epoch"`
	Self  string   `json:"self"`
	Nodes []string `json:"nodes"`
	Jobs  []struct {
		Job       string           `json:"job"`
		KeyGroups int              `json:"key_groups"`
		Owners    map[string][]int `json:"owners"`
	} `json:"jobs"`
}

// Fetch reads every path. A job's endpoint has /status, /topology and /checkpoints; a
// cluster node's has /members and /placement, and /cluster/stages, which adds up every
// node's stages: what is not served stays empty.
func (c *Client) Fetch(ctx context.Context) (Snapshot, error) {
	s := Snapshot{At: time.Now()}
	optional := []struct {
		path string
		v    any
	}{
		{"/members", &s.Members}, {"/status", &s.Status}, {"/topology", &s.Topology}, {"/checkpoints", &s.Checkpoints},
	}
	for _, o := range optional {
		if err := c.get(ctx, o.path, o.v); err != nil && !errors.Is(err, errNotServed) {
			return s, err
		}
	}
	stages := "/stages"
	if len(s.Members) > 0 {
		stages = "/cluster/stages" // any node answers for the whole cluster
	}
	if err := c.get(ctx, stages, &s.Stages); err != nil {
		return s, err
	}
	var p Placement
	if err := c.get(ctx, "/placement", &p); err == nil {
		s.Placement = &p
	}
	return s, nil
}

// WaitEnd asks the endpoint to answer once the job has ended, or after wait.
func (c *Client) WaitEnd(ctx context.Context, wait time.Duration) (admin.Status, error) {
	var st admin.Status
	err := c.get(ctx, "/status?wait="+wait.String(), &st)
	return st, err
}

// State looks up the state stage holds for key.
func (c *Client) State(ctx context.Context, stage, key string) (admin.StateView, error) {
	var v admin.StateView
	err := c.get(ctx, "/state/"+url.PathEscape(stage)+"?key="+url.QueryEscape(key), &v)
	return v, err
}

// instanceCount returns how many instances st has (for a stats row without details).
func instanceCount(st actor.StageStats) int { return max(st.Instances, len(st.PerInstance)) }
