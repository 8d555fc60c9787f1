// Package admin serves a running job's admin endpoint: JSON about its plan, its stages and
// their instances, its checkpoints and its keyed state (point queries and scans,
// /state/{stage}; see state.go for the JSON), and Prometheus metrics. graph.Admin
// starts one for a job; cluster nodes serve the same endpoint with /members and /placement
// added.
//
// The smallest use:
//
//	srv, err := admin.Serve(ctx, "127.0.0.1:9090", admin.Handler(src, admin.Options{}))
//	if err != nil { ... }
//	defer srv.Close()
//
// Every path is GET; every answer is JSON except /metrics, errors included
// ({"error": "..."}, with 404 for an unknown path, stage or key, 400 for a bad request).
// Requests are bounded: no body is read, a query string is at most 1 KiB, headers at most
// 16 KiB.
package admin
