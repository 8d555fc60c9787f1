package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/admin"
)

// peerTimeout bounds how long /cluster/stages waits for a node's /stages.
const peerTimeout = 2 * time.Second

// maxPeerAnswer bounds what is read of a node's /stages.
const maxPeerAnswer = 16 << 20

// clusterStages answers /cluster/stages: every member's /stages (its own included, through
// its admin address), merged into one view of the whole job. A node that does not answer
// is named in the X-Eddy-Unreachable header, and its instances read 0.
func clusterStages(src AdminSource) http.HandlerFunc {
	client := &http.Client{Timeout: peerTimeout}
	return func(w http.ResponseWriter, r *http.Request) {
		members := src.Members()
		var (
			mu          sync.Mutex
			views       [][]StageView
			unreachable []string
			wg          sync.WaitGroup
		)
		for _, m := range members {
			if m.AdminAddr == "" {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := peerStages(r.Context(), client, m.AdminAddr)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					unreachable = append(unreachable, m.NodeID)
					return
				}
				views = append(views, v)
			}()
		}
		wg.Wait()
		if len(unreachable) > 0 {
			slices.Sort(unreachable)
			w.Header().Set("X-Eddy-Unreachable", strings.Join(unreachable, ","))
		}
		admin.WriteJSON(w, http.StatusOK, mergeStages(views))
	}
}

func peerStages(ctx context.Context, client *http.Client, addr string) ([]StageView, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/stages", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/stages: %s", addr, resp.Status)
	}
	var v []StageView
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxPeerAnswer)).Decode(&v); err != nil {
		return nil, fmt.Errorf("GET %s/stages: %w", addr, err)
	}
	return v, nil
}

// mergeStages adds up the nodes' views of the stages: counters and rates add up (each node
// counts the instances it runs), an instance's row is the one of the node that runs it (the
// busiest), and a stage's watermark is the lowest of its instances' once all have one.
func mergeStages(views [][]StageView) []StageView {
	var out []StageView
	index := map[string]int{}
	for _, view := range views {
		for _, s := range view {
			i, ok := index[s.Stage]
			if !ok {
				index[s.Stage] = len(out)
				c := s
				c.PerInstance = slices.Clone(s.PerInstance)
				c.InstanceRates = slices.Clone(s.InstanceRates)
				out = append(out, c)
				continue
			}
			m := &out[i]
			m.In += s.In
			m.Out += s.Out
			m.DeadLetters += s.DeadLetters
			m.Restarts += s.Restarts
			m.Late += s.Late
			m.Batches += s.Batches
			m.Backpressure += s.Backpressure
			m.Alignment += s.Alignment
			m.MaxQueued = max(m.MaxQueued, s.MaxQueued)
			m.Queued += s.Queued
			m.CreditsInUse += s.CreditsInUse
			m.CreditLimit += s.CreditLimit
			m.RateWindow = max(m.RateWindow, s.RateWindow)
			m.InRate += s.InRate
			m.OutRate += s.OutRate
			m.DeadRate += s.DeadRate
			m.LateRate += s.LateRate
			m.Backpressured += s.Backpressured // each node's share is over all the instances
			for j, is := range s.PerInstance {
				if j < len(m.PerInstance) && is.In+is.Out > m.PerInstance[j].In+m.PerInstance[j].Out {
					m.PerInstance[j] = is
					if j < len(s.InstanceRates) && j < len(m.InstanceRates) {
						m.InstanceRates[j] = s.InstanceRates[j]
					}
				}
			}
		}
	}
	for i := range out {
		m := &out[i]
		m.Backpressured = min(m.Backpressured, 1)
		low, all := actor.MaxWatermark, len(m.PerInstance) > 0
		for _, is := range m.PerInstance {
			if !is.HasWatermark {
				all = false
				break
			}
			low = min(low, is.Watermark)
		}
		if all && !m.HasWatermark {
			m.Watermark, m.HasWatermark = low, true
		}
	}
	return out
}
