package tui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/admin"
)

var (
	titleStyle    = lipgloss.NewStyle().Bold(true)
	dimStyle      = lipgloss.NewStyle().Faint(true)
	selectedStyle = lipgloss.NewStyle().Reverse(true)
	warnStyle     = lipgloss.NewStyle().Foreground(lipgloss.Color("3")).Bold(true)
	alertStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true)
	okStyle       = lipgloss.NewStyle().Foreground(lipgloss.Color("2"))
	boxStyle      = lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).Padding(0, 1)
	hotBoxStyle   = boxStyle.BorderForeground(lipgloss.Color("1")).BorderStyle(lipgloss.ThickBorder())
)

// Render draws m in its Width × Height; prompt is the key lookup prompt's line, if open.
func Render(m *Model, prompt string) string {
	var b strings.Builder
	b.WriteString(header(m))
	b.WriteString("\n")
	b.WriteString(tabs(m))
	b.WriteString("\n\n")
	var body string
	switch m.Page {
	case PageStages:
		body = topology(m) + "\n\n" + stageTable(m)
	case PageInstances:
		body = instanceTable(m)
	case PageCheckpoints:
		body = checkpointTable(m)
	case PageNodes:
		body = nodeTable(m)
	}
	foot := footer(m, prompt)
	room := max(m.Height-strings.Count(b.String(), "\n")-strings.Count(foot, "\n")-2, 1)
	lines := strings.Split(body, "\n")
	if len(lines) > room {
		lines = append(lines[:room-1], dimStyle.Render(fmt.Sprintf("… %d more lines (a taller window shows them)", len(lines)-room+1)))
	}
	b.WriteString(strings.Join(lines, "\n"))
	b.WriteString("\n\n")
	b.WriteString(foot)
	return lipgloss.NewStyle().MaxWidth(m.Width).MaxHeight(m.Height).Render(b.String())
}

func header(m *Model) string {
	job := m.Last.Status.Job
	if job == "" {
		job = m.Last.Topology.Job
	}
	if job == "" {
		job = "?"
	}
	state := ""
	switch {
	case m.Ended != nil:
		state = alertStyle.Render(fmt.Sprintf("■ job %s", endWord(m.Ended.State)))
		if m.Ended.Ended != nil {
			state += fmt.Sprintf(" at %s after %s", m.Ended.Ended.Format("15:04:05"), m.Ended.Ended.Sub(m.Ended.Started).Round(time.Second))
		}
	case m.Link == Connecting:
		state = dimStyle.Render("connecting…")
	case m.Link == Lost:
		state = warnStyle.Render("○ not answering")
	default:
		state = okStyle.Render("● running") + " " + m.Last.At.Sub(m.Last.Status.Started).Round(time.Second).String()
	}
	return titleStyle.Render("eddytop") + "  job " + titleStyle.Render(job) + "  " + state + "  " + dimStyle.Render(m.Addr)
}

func endWord(state string) string {
	switch state {
	case "finished":
		return "ended: finished"
	case "failed":
		return "ended: failed"
	case "cancelled":
		return "ended: cancelled"
	}
	return "ended"
}

func tabs(m *Model) string {
	names := []struct {
		p    Page
		name string
	}{{PageStages, "stages"}, {PageCheckpoints, "checkpoints"}, {PageNodes, "nodes"}}
	var parts []string
	for _, n := range names {
		if m.Page == n.p || (m.Page == PageInstances && n.p == PageStages) {
			parts = append(parts, selectedStyle.Render(" "+n.name+" "))
		} else {
			parts = append(parts, " "+n.name+" ")
		}
	}
	return strings.Join(parts, " ")
}

// levels orders the vertices left to right: a vertex sits one column after the furthest
// vertex that feeds it.
func levels(d graph.Description) [][]graph.VertexInfo {
	level := map[string]int{}
	for range d.Vertices { // at most one pass per vertex to settle
		for _, ch := range d.Channels {
			if l := level[ch.From] + 1; l > level[ch.To] {
				level[ch.To] = l
			}
		}
	}
	var cols [][]graph.VertexInfo
	for _, v := range d.Vertices {
		l := level[v.Name]
		for len(cols) <= l {
			cols = append(cols, nil)
		}
		cols[l] = append(cols[l], v)
	}
	return cols
}

func topology(m *Model) string {
	d := m.Last.Topology
	if len(d.Vertices) == 0 {
		return dimStyle.Render("(no topology yet)")
	}
	hot := m.Bottleneck()
	unit := map[string]string{"source": "splits", "keyed": "key groups", "stateless": "instances"}
	cols := levels(d)
	var parts []string
	for i, col := range cols {
		if i > 0 {
			var kinds []string
			for _, ch := range d.Channels {
				for _, v := range col {
					if ch.To == v.Name && !slices.Contains(kinds, ch.Partitioning) {
						kinds = append(kinds, ch.Partitioning)
					}
				}
			}
			parts = append(parts, " ─"+strings.Join(kinds, "/")+"─▶ ")
		}
		var boxes []string
		for _, v := range col {
			lines := []string{titleStyle.Render(v.Name), dimStyle.Render(fmt.Sprintf("×%d %s", v.Instances, unit[v.Kind]))}
			for _, s := range v.Stages {
				if s != v.Name {
					lines = append(lines, "· "+s)
				}
			}
			style := boxStyle
			if v.Name == hot {
				style = hotBoxStyle
				lines = append(lines, alertStyle.Render("bottleneck"))
			}
			boxes = append(boxes, style.Render(strings.Join(lines, "\n")))
		}
		parts = append(parts, lipgloss.JoinVertical(lipgloss.Left, boxes...))
	}
	return lipgloss.JoinHorizontal(lipgloss.Center, parts...)
}

// sparkline draws values as bars, scaled to their maximum.
func sparkline(values []float64, width int) string {
	bars := []rune("▁▂▃▄▅▆▇█")
	if len(values) > width {
		values = values[len(values)-width:]
	}
	top := 0.0
	for _, v := range values {
		top = max(top, v)
	}
	var b strings.Builder
	for range width - len(values) {
		b.WriteRune(' ')
	}
	for _, v := range values {
		i := 0
		if top > 0 {
			i = min(int(v/top*float64(len(bars)-1)+0.5), len(bars)-1)
		}
		b.WriteRune(bars[i])
	}
	return b.String()
}

// human writes a count or a rate short: 950, 12.3k, 4.56M.
func human(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func lag(st admin.StageView) string {
	switch {
	case !st.HasWatermark:
		return "-"
	case st.WatermarkLag == 0:
		return "ended"
	}
	return st.WatermarkLag.Round(time.Millisecond).String()
}

const stageRow = "%-22s %5s %9s %9s  %-24s %5s %7s %9s %10s %7s %6s"

func stageTable(m *Model) string {
	var b strings.Builder
	b.WriteString(titleStyle.Render(fmt.Sprintf(stageRow, "stage", "inst", "in/s", "out/s", "in/s history", "bp", "queued", "credits", "wm lag", "dead", "late")))
	hot := m.Bottleneck()
	for i, st := range m.Last.Stages {
		row := fmt.Sprintf(stageRow, clip(st.Stage, 22), fmt.Sprint(instanceCount(st.StageStats)), human(st.InRate), human(st.OutRate),
			sparkline(m.Rates[st.Stage], 24), fmt.Sprintf("%.0f%%", 100*st.Backpressured), fmt.Sprint(st.Queued),
			fmt.Sprintf("%d/%d", st.CreditsInUse, st.CreditLimit), lag(st), human(float64(st.DeadLetters)), human(float64(st.Late)))
		switch {
		case i == m.Selected:
			row = selectedStyle.Render(row)
		case st.Stage == hot:
			row = alertStyle.Render(row)
		case st.Backpressured > 0.5:
			row = warnStyle.Render(row)
		}
		switch {
		case st.Stage == hot:
			row += alertStyle.Render(" ◀ bottleneck")
		case st.Backpressured > 0.5:
			row += warnStyle.Render(" back-pressured")
		}
		b.WriteString("\n" + row)
	}
	if len(m.Last.Stages) == 0 {
		b.WriteString("\n" + dimStyle.Render("(no stages yet)"))
	}
	return b.String()
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

const instanceRow = "%-6s %12s %12s %9s %9s %5s %7s %9s %24s"

func instanceTable(m *Model) string {
	var st *admin.StageView
	for i := range m.Last.Stages {
		if i == m.Selected {
			st = &m.Last.Stages[i]
		}
	}
	if st == nil {
		return dimStyle.Render("(no stage selected)")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s\n\n", titleStyle.Render("stage "+st.Stage), dimStyle.Render(fmt.Sprintf("%d instances · esc: back", instanceCount(st.StageStats))))
	b.WriteString(titleStyle.Render(fmt.Sprintf(instanceRow, "inst", "in", "out", "in/s", "out/s", "bp", "queued", "credits", "watermark")))
	for i, is := range st.PerInstance {
		var r admin.InstanceRates
		if i < len(st.InstanceRates) {
			r = st.InstanceRates[i]
		}
		wm := "-"
		if is.HasWatermark {
			wm = time.UnixMilli(is.Watermark).UTC().Format("2006-01-02 15:04:05.000")
			if is.Watermark == actor.MaxWatermark {
				wm = "ended"
			}
		}
		row := fmt.Sprintf(instanceRow, fmt.Sprintf("#%d", is.Index), fmt.Sprint(is.In), fmt.Sprint(is.Out), human(r.InRate), human(r.OutRate),
			fmt.Sprintf("%.0f%%", 100*r.Backpressured), fmt.Sprint(is.Queued), fmt.Sprintf("%d/%d", is.CreditsInUse, is.CreditLimit), wm)
		if r.Backpressured > 0.5 {
			row = warnStyle.Render(row)
		}
		b.WriteString("\n" + row)
	}
	return b.String()
}

const checkpointRow = "%8s  %-12s %10s %10s %10s  %s"

func checkpointTable(m *Model) string {
	c := m.Last.Checkpoints
	var b strings.Builder
	fmt.Fprintf(&b, "%s  completed %d · failed %d · last %d (%s, %s)\n\n", titleStyle.Render("checkpoints"),
		c.Completed, c.Failed, c.Last, c.Duration.Round(time.Millisecond), bytes(c.Bytes))
	if len(c.History) == 0 {
		b.WriteString(dimStyle.Render("(no checkpoints: the job runs without graph.Checkpoints, or none has been taken yet)"))
		return b.String()
	}
	b.WriteString(titleStyle.Render(fmt.Sprintf(checkpointRow, "id", "started", "duration", "size", "alignment", "")))
	for i := len(c.History) - 1; i >= 0; i-- {
		r := c.History[i]
		row := fmt.Sprintf(checkpointRow, fmt.Sprint(r.ID), r.Started.Format("15:04:05.000"), r.Duration.Round(time.Millisecond),
			bytes(r.Bytes), r.Alignment.Round(time.Microsecond), r.Error)
		if r.Error != "" {
			row = alertStyle.Render(row)
		}
		b.WriteString("\n" + row)
	}
	return b.String()
}

func bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

const nodeRow = "%-16s %-24s %10s %s"

func nodeTable(m *Model) string {
	var b strings.Builder
	b.WriteString(titleStyle.Render("nodes") + "\n\n")
	if len(m.Last.Members) == 0 {
		groups := 0
		for _, v := range m.Last.Topology.Vertices {
			if v.Kind == "keyed" {
				groups = max(groups, v.Instances)
			}
		}
		fmt.Fprintf(&b, "one process (no cluster): every key group runs here — %d key groups, state %s at the last checkpoint", groups, bytes(m.Last.Checkpoints.Bytes))
		return b.String()
	}
	owned := map[string]int{}
	if p := m.Last.Placement; p != nil {
		for _, j := range p.Jobs {
			for node, kgs := range j.Owners {
				owned[node] += len(kgs)
			}
		}
	}
	b.WriteString(titleStyle.Render(fmt.Sprintf(nodeRow, "node", "address", "key groups", "")))
	for _, mb := range m.Last.Members {
		self := ""
		if p := m.Last.Placement; p != nil && p.Self == mb.NodeID {
			self = dimStyle.Render("(answering)")
		}
		b.WriteString("\n" + fmt.Sprintf(nodeRow, mb.NodeID, mb.Addr, fmt.Sprint(owned[mb.NodeID]), self))
	}
	return b.String()
}

func footer(m *Model, prompt string) string {
	var lines []string
	switch {
	case m.Ended != nil && m.Link == Lost:
		lines = append(lines, alertStyle.Render(fmt.Sprintf("The job has ended (%s); its endpoint is closed. Showing its last reading; watching %s for a new run.", m.Ended.State, m.Addr)))
	case m.Ended != nil:
		lines = append(lines, alertStyle.Render(fmt.Sprintf("The job has ended (%s).", m.Ended.State)))
	case m.Link == Lost:
		lines = append(lines, warnStyle.Render(fmt.Sprintf("No answer from %s since %s: %s — reconnecting.", m.Addr, m.LostSince.Format("15:04:05"), m.Err)))
	}
	if m.Ended != nil && m.Ended.Error != "" {
		lines = append(lines, alertStyle.Render("error: "+m.Ended.Error))
	}
	if m.Lookup != "" {
		lines = append(lines, m.Lookup)
	}
	if prompt != "" {
		lines = append(lines, prompt)
	} else {
		lines = append(lines, dimStyle.Render("↑/↓ select · enter: instances · esc: back · tab: page · /: look up a key · q: quit"))
	}
	return strings.Join(lines, "\n")
}
