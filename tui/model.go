package tui

import (
	"time"

	"github.com/eddyflow/eddy/internal/admin"
)

// Page is what the screen shows below the header.
type Page int

const (
	// PageStages shows the topology and the stage table.
	PageStages Page = iota
	// PageInstances shows the instances of one stage (enter on a stage).
	PageInstances
	// PageCheckpoints shows the checkpoint history.
	PageCheckpoints
	// PageNodes shows the nodes and the key groups each owns.
	PageNodes
)

// historyLen is how many readings a sparkline shows.
const historyLen = 24

// Link says how the screen is connected to the endpoint.
type Link int

const (
	// Connecting: no answer yet.
	Connecting Link = iota
	// Connected: the last reading succeeded.
	Connected
	// Lost: the last reading failed; the screen keeps the last one and tries again.
	Lost
)

// Model is what the screen shows, built from admin readings and keys; it knows nothing of
// HTTP or of the terminal, so it is tested as a plain value.
type Model struct {
	Addr string
	// Last is the latest reading; Rates the in-rate history of each stage, oldest first.
	Last  Snapshot
	Rates map[string][]float64
	// Link and Err say how the last reading went; LostSince when the endpoint stopped
	// answering.
	Link      Link
	Err       string
	LostSince time.Time
	// Ended is the job's end, once the endpoint has said so (it stops answering then).
	Ended *admin.Status

	Page     Page
	Selected int // the selected stage (row of the stage table)
	// Prompting is true while the key lookup prompt is open; Lookup is the last answer.
	Prompting bool
	Lookup    string

	Width, Height int
}

// NewModel returns the model of a screen watching addr.
func NewModel(addr string) *Model {
	return &Model{Addr: addr, Rates: map[string][]float64{}, Width: 120, Height: 40}
}

// Observe takes a successful reading in.
func (m *Model) Observe(s Snapshot) {
	if m.Ended != nil && s.Status.Started.After(m.Ended.Started) {
		m.Ended = nil // a new run at the same address
		m.Rates = map[string][]float64{}
	}
	if m.Ended == nil && s.Status.State != "" && s.Status.State != "running" {
		st := s.Status
		m.Ended = &st
	}
	m.Last, m.Link, m.Err = s, Connected, ""
	for _, st := range s.Stages {
		h := append(m.Rates[st.Stage], st.InRate)
		if len(h) > historyLen {
			h = h[len(h)-historyLen:]
		}
		m.Rates[st.Stage] = h
	}
	m.Selected = min(m.Selected, max(len(s.Stages)-1, 0))
}

// Fail takes a failed reading in at now.
func (m *Model) Fail(err error, now time.Time) {
	if m.Link != Lost {
		m.LostSince = now
	}
	m.Link, m.Err = Lost, err.Error()
}

// End records the end of the job, as the endpoint announced it.
func (m *Model) End(st admin.Status) {
	if st.State == "running" || st.State == "" {
		return
	}
	m.Ended = &st
	m.Last.Status = st
}

// Key is a key press the model understands.
type Key string

// The keys of the screen.
const (
	KeyUp    Key = "up"
	KeyDown  Key = "down"
	KeyTab   Key = "tab"
	KeyEnter Key = "enter"
	KeyBack  Key = "esc"
	KeySlash Key = "/"
)

// Press moves the selection or the page; it reports whether it changed anything.
func (m *Model) Press(k Key) {
	switch k {
	case KeyUp:
		m.Selected = max(m.Selected-1, 0)
	case KeyDown:
		m.Selected = min(m.Selected+1, max(len(m.Last.Stages)-1, 0))
	case KeyTab:
		switch m.Page {
		case PageStages, PageInstances:
			m.Page = PageCheckpoints
		case PageCheckpoints:
			m.Page = PageNodes
		default:
			m.Page = PageStages
		}
	case KeyEnter:
		if m.Page == PageStages && len(m.Last.Stages) > 0 {
			m.Page = PageInstances
		}
	case KeyBack:
		m.Page = PageStages
	case KeySlash:
		m.Prompting = true
	}
}

// SelectedStage returns the name of the selected stage, or "".
func (m *Model) SelectedStage() string {
	if m.Selected < len(m.Last.Stages) {
		return m.Last.Stages[m.Selected].Stage
	}
	return ""
}

// Bottleneck returns the stage holding the others back: a stage that is not itself
// back-pressured (under 10% of the time) fed by one that is (over half of the time); ""
// when there is none.
func (m *Model) Bottleneck() string {
	share := map[string]float64{}
	for _, st := range m.Last.Stages {
		share[st.Stage] = st.Backpressured
	}
	best, bestShare := "", 0.0
	for _, ch := range m.Last.Topology.Channels {
		if share[ch.From] > 0.5 && share[ch.To] < 0.1 && share[ch.From] > bestShare {
			best, bestShare = ch.To, share[ch.From]
		}
	}
	return best
}
