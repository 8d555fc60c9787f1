// Package tui is eddytop's screen: a live view of a running job, read from its admin
// endpoint (internal/admin), drawn with bubbletea and lipgloss.
//
// Three parts, each testable on its own:
//
//   - Client reads the endpoint (HTTP, JSON) into a Snapshot.
//   - Model is what is shown: readings, rate history, selection, page, link state. It is a
//     plain value moved by Observe, Fail, End and Press.
//   - Render draws a Model as text; App is the bubbletea program that ties them together,
//     every read in a tea.Cmd.
//
// The smallest use:
//
//	app := tui.NewApp(tui.NewClient("127.0.0.1:9090"), time.Second)
//	_, err := tea.NewProgram(app, tea.WithAltScreen()).Run()
package tui
