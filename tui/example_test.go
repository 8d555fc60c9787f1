package tui_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/admin"
	"github.com/eddyflow/eddy/tui"
)

// The model is a plain value: readings go in, Render draws it, with no terminal.
func ExampleRender() {
	m := tui.NewModel("127.0.0.1:9090")
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.Observe(tui.Snapshot{
		At:     start.Add(5 * time.Second),
		Status: admin.Status{Job: "clicks", State: "running", Started: start},
		Stages: []admin.StageView{{StageStats: actor.StageStats{Stage: "clicks", Instances: 2, In: 1000}, InRate: 200}},
	})
	m.Press(tui.KeyTab)
	screen := tui.Render(m, "")
	fmt.Println(strings.TrimSpace(strings.SplitN(screen, "\n", 2)[0]))
	// Output:
	// eddytop  job clicks  ● running 5s  127.0.0.1:9090
}
