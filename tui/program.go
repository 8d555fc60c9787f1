package tui

import (
	"context"
	"fmt"
	"time"

	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/eddyflow/eddy/internal/admin"
)

// App is the bubbletea model of eddytop: the Model, the admin Client that feeds it, and
// the key prompt. Every read of the endpoint runs in a tea.Cmd; Update never blocks.
type App struct {
	m        *Model
	client   *Client
	interval time.Duration
	prompt   textinput.Model
	// ctx ends the reads in flight when the program quits.
	ctx    context.Context
	cancel context.CancelFunc
}

// NewApp returns the app watching client's endpoint, reading it every interval.
func NewApp(client *Client, interval time.Duration) *App {
	ti := textinput.New()
	ti.Prompt = "key: "
	ti.CharLimit = 256
	ctx, cancel := context.WithCancel(context.Background())
	return &App{m: NewModel(client.Addr()), client: client, interval: interval, prompt: ti, ctx: ctx, cancel: cancel}
}

// Model returns what the screen shows.
func (a *App) Model() *Model { return a.m }

type (
	snapshotMsg struct{ s Snapshot }
	failMsg     struct {
		err error
		at  time.Time
	}
	tickMsg      struct{}
	endMsg       struct{ st admin.Status }
	waitAgainMsg struct{}
	lookupMsg    struct{ text string }
)

func (a *App) fetch() tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
		defer cancel()
		s, err := a.client.Fetch(ctx)
		if err != nil {
			return failMsg{err, time.Now()}
		}
		return snapshotMsg{s}
	}
}

func (a *App) tick() tea.Cmd {
	return tea.Tick(a.interval, func(time.Time) tea.Msg { return tickMsg{} })
}

// waitEnd asks the endpoint to answer when the job ends: the end is seen even when the
// endpoint closes right after it.
func (a *App) waitEnd() tea.Cmd {
	return func() tea.Msg {
		st, err := a.client.WaitEnd(a.ctx, 30*time.Second)
		if err != nil {
			// Not answering: try again after a while (the fetches say what is wrong).
			select {
			case <-time.After(a.interval):
			case <-a.ctx.Done():
			}
			return waitAgainMsg{}
		}
		return endMsg{st}
	}
}

// Init starts reading.
func (a *App) Init() tea.Cmd { return tea.Batch(a.fetch(), a.tick(), a.waitEnd()) }

// Update handles a message.
func (a *App) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		a.m.Width, a.m.Height = msg.Width, msg.Height
	case snapshotMsg:
		a.m.Observe(msg.s)
	case failMsg:
		a.m.Fail(msg.err, msg.at)
	case tickMsg:
		return a, tea.Batch(a.fetch(), a.tick())
	case endMsg:
		a.m.End(msg.st)
		if msg.st.State != "running" {
			// Ended, and still answering: ask again later, not at once.
			return a, tea.Tick(a.interval, func(time.Time) tea.Msg { return waitAgainMsg{} })
		}
		return a, a.waitEnd()
	case waitAgainMsg:
		return a, a.waitEnd()
	case lookupMsg:
		a.m.Lookup = msg.text
	case tea.KeyMsg:
		return a.key(msg)
	}
	return a, nil
}

func (a *App) key(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	if a.m.Prompting {
		switch msg.Type {
		case tea.KeyEsc:
			a.m.Prompting = false
			a.prompt.Blur()
			return a, nil
		case tea.KeyEnter:
			a.m.Prompting = false
			a.prompt.Blur()
			return a, a.lookup(a.m.SelectedStage(), a.prompt.Value())
		case tea.KeyCtrlC:
			return a.quit()
		}
		var cmd tea.Cmd
		a.prompt, cmd = a.prompt.Update(msg)
		return a, cmd
	}
	switch msg.String() {
	case "q", "ctrl+c":
		return a.quit()
	case "up", "k":
		a.m.Press(KeyUp)
	case "down", "j":
		a.m.Press(KeyDown)
	case "tab", "right", "left", "shift+tab":
		a.m.Press(KeyTab)
	case "enter":
		a.m.Press(KeyEnter)
	case "esc", "backspace":
		a.m.Press(KeyBack)
	case "/":
		a.m.Press(KeySlash)
		a.prompt.Prompt = fmt.Sprintf("key in %s: ", a.m.SelectedStage())
		a.prompt.SetValue("")
		return a, a.prompt.Focus()
	}
	return a, nil
}

func (a *App) quit() (tea.Model, tea.Cmd) {
	a.cancel()
	return a, tea.Quit
}

func (a *App) lookup(stage, key string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
		defer cancel()
		v, err := a.client.State(ctx, stage, key)
		if err != nil {
			return lookupMsg{fmt.Sprintf("%s[%s]: %v", stage, key, err)}
		}
		return lookupMsg{fmt.Sprintf("%s[%s] = %s", stage, key, v.Value)}
	}
}

// View draws the screen.
func (a *App) View() string {
	prompt := ""
	if a.m.Prompting {
		prompt = a.prompt.View()
	}
	return Render(a.m, prompt)
}
