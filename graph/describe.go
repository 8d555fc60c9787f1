package graph

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/eddyflow/eddy/actor"
)

// Description is a job's plan: the logical stages as written, and the physical vertices
// they were fused into, with the channels between them.
type Description struct {
	Job      string        `json:"job"`
	Stages   []StageInfo   `json:"stages"`
	Vertices []VertexInfo  `json:"vertices"`
	Channels []ChannelInfo `json:"channels"`
}

// StageInfo describes one logical stage.
type StageInfo struct {
	Name   string   `json:"name"`
	Kind   string   `json:"kind"`
	Type   string   `json:"type"`
	Inputs []string `json:"inputs,omitempty"`
	Key    string   `json:"key,omitempty"`
}

// VertexInfo describes one vertex: the stages fused into one actor per instance.
type VertexInfo struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`
	Instances int      `json:"instances"`
	Stages    []string `json:"stages"`
}

// ChannelInfo describes the channels from every instance of one vertex to another.
type ChannelInfo struct {
	From         string `json:"from"`
	To           string `json:"to"`
	Port         int    `json:"port"`
	Partitioning string `json:"partitioning"`
}

func (g *Graph) describe(plan *actor.Plan, vps []*vertexPlan) Description {
	d := Description{Job: g.name, Stages: []StageInfo{}, Vertices: []VertexInfo{}, Channels: []ChannelInfo{}}
	for _, s := range g.stages {
		si := StageInfo{Name: s.name, Kind: s.kind, Type: s.typ, Key: s.keyDesc}
		for _, in := range s.inputs {
			si.Inputs = append(si.Inputs, in.name)
		}
		d.Stages = append(d.Stages, si)
	}
	for i, v := range plan.Vertices {
		kind := "stateless"
		switch {
		case v.Source:
			kind = "source"
		case v.Keyed:
			kind = "keyed"
		}
		d.Vertices = append(d.Vertices, VertexInfo{Name: v.Name, Kind: kind, Instances: v.Instances, Stages: plan.Vertices[i].Stages})
	}
	for _, e := range plan.Edges {
		d.Channels = append(d.Channels, ChannelInfo{From: plan.Vertices[e.From].Name, To: plan.Vertices[e.To].Name, Port: e.Port, Partitioning: e.Partitioning.String()})
	}
	_ = vps
	return d
}

// JSON returns the description as indented JSON.
func (d Description) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("describe %s as JSON: %w", d.Job, err)
	}
	return b, nil
}

// Mermaid returns the description as a Mermaid flowchart: one subgraph per vertex (the
// stages fused into one actor), stage-to-stage arrows, and thick arrows where records are
// re-partitioned between actors. A stage fused into several vertices (after a Merge) is
// drawn in the first.
func (d Description) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	ids := map[string]string{}
	for i, s := range d.Stages {
		ids[s.Name] = fmt.Sprintf("s%d", i)
	}
	stageInfo := map[string]StageInfo{}
	for _, s := range d.Stages {
		stageInfo[s.Name] = s
	}
	drawn := map[string]bool{}
	for i, v := range d.Vertices {
		unit := map[string]string{"source": "splits", "keyed": "key groups", "stateless": "instances"}[v.Kind]
		fmt.Fprintf(&b, "  subgraph v%d[\"%s × %d %s\"]\n", i, esc(v.Name), v.Instances, unit)
		for _, name := range v.Stages {
			if drawn[name] {
				continue
			}
			drawn[name] = true
			s := stageInfo[name]
			fmt.Fprintf(&b, "    %s[\"%s<br/>%s: %s\"]\n", ids[name], esc(name), s.Kind, esc(s.Type))
		}
		b.WriteString("  end\n")
	}
	kinds := map[string]string{}
	for _, v := range d.Vertices {
		kinds[v.Name] = v.Kind
	}
	for _, s := range d.Stages {
		for _, in := range s.Inputs {
			switch kinds[s.Name] {
			case "keyed":
				fmt.Fprintf(&b, "  %s == \"hash by %s\" ==> %s\n", ids[in], esc(s.Key), ids[s.Name])
			case "stateless":
				fmt.Fprintf(&b, "  %s == \"rebalance\" ==> %s\n", ids[in], ids[s.Name])
			default:
				fmt.Fprintf(&b, "  %s --> %s\n", ids[in], ids[s.Name])
			}
		}
	}
	return b.String()
}

// esc makes a label safe inside a quoted Mermaid label.
func esc(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;").Replace(s)
}
