// Package kservetest runs a real HTTP server that speaks the Open Inference Protocol
// (KServe v2, REST) in front of an infer.Model, with faults on demand: slow answers, error
// statuses, a server that dies. It is what the tests of the kserve client and of the
// inference stage talk to, in place of Triton.
//
//	srv := kservetest.NewServer("fraud", 8, infer.RowFunc(score))
//	defer srv.Close()
//	c, err := kserve.Dial(ctx, srv.URL, "fraud")
package kservetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/kserve"
)

// Fault is what the server does with one inference request instead of, or before,
// answering it.
type Fault struct {
	// Delay holds the answer back (until the client gives up, if that is sooner).
	Delay time.Duration
	// Status, if not 0, is the answer's status, with {"error": ...}, instead of inferring.
	Status int
}

// Server is a v2 server of one model, with version "1".
type Server struct {
	*httptest.Server
	name  string
	width int
	model infer.Model

	// Requests counts the inference requests received; Rows the rows answered with 200;
	// Conns the connections clients opened.
	Requests, Rows, Conns atomic.Int64

	// mu guards fault.
	mu    sync.Mutex
	fault func(n int64) Fault
}

// NewServer starts a server of model under name, whose input is FP32 [-1, width].
func NewServer(name string, width int, model infer.Model) *Server {
	s := &Server{name: name, width: width, model: model}
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, map[string]any{}) }
	mux.HandleFunc("GET /v2/health/live", ok)
	mux.HandleFunc("GET /v2/health/ready", ok)
	mux.HandleFunc("GET /v2/models/{name}", s.withModel(s.metadata))
	mux.HandleFunc("GET /v2/models/{name}/versions/{version}", s.withModel(s.metadata))
	mux.HandleFunc("GET /v2/models/{name}/ready", s.withModel(ok))
	mux.HandleFunc("GET /v2/models/{name}/versions/{version}/ready", s.withModel(ok))
	mux.HandleFunc("POST /v2/models/{name}/infer", s.withModel(s.infer))
	mux.HandleFunc("POST /v2/models/{name}/versions/{version}/infer", s.withModel(s.infer))
	s.Server = httptest.NewUnstartedServer(mux)
	s.Server.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.Conns.Add(1)
		}
	}
	s.Server.Start()
	return s
}

// SetFault makes f decide the fault of the n-th inference request (from 1); nil: none.
func (s *Server) SetFault(f func(n int64) Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

func (s *Server) withModel(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != s.name {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no model %q", r.PathValue("name")))
			return
		}
		if v := r.PathValue("version"); v != "" && v != "1" {
			writeError(w, http.StatusNotFound, fmt.Sprintf("model %q has no version %q", s.name, v))
			return
		}
		h(w, r)
	}
}

func (s *Server) metadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, kserve.Metadata{
		Name: s.name, Versions: []string{"1"}, Platform: "eddy_go",
		Inputs:  []kserve.TensorMetadata{{Name: "features", Datatype: "FP32", Shape: []int64{-1, int64(s.width)}}},
		Outputs: []kserve.TensorMetadata{{Name: "scores", Datatype: "FP32", Shape: []int64{-1, -1}}},
	})
}

// infer answers an inference request. The body is read before any fault, so that the
// server notices a client that goes away while the answer is held back.
func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	n := s.Requests.Add(1)
	var req kserve.InferRequest
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "decode the request: "+err.Error())
		return
	}
	s.mu.Lock()
	fault := s.fault
	s.mu.Unlock()
	if fault != nil {
		f := fault(n)
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return // the client went away
			}
		}
		if f.Status != 0 {
			writeError(w, f.Status, fmt.Sprintf("fault injected on request %d", n))
			return
		}
	}
	if len(req.Inputs) != 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("want 1 input, got %d", len(req.Inputs)))
		return
	}
	in := req.Inputs[0]
	if in.Name != "features" || in.Datatype != "FP32" || len(in.Shape) != 2 || in.Shape[1] != int64(s.width) || int64(len(in.Data)) != in.Shape[0]*in.Shape[1] {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("input %q %s %v with %d values; want features FP32 [n, %d]", in.Name, in.Datatype, in.Shape, len(in.Data), s.width))
		return
	}
	rows := make([][]float32, in.Shape[0])
	for i := range rows {
		rows[i] = in.Data[i*s.width : (i+1)*s.width]
	}
	out, err := s.model.Infer(r.Context(), rows)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	m := 0
	if len(out) > 0 {
		m = len(out[0])
	}
	flat := make([]float32, 0, len(out)*m)
	for _, o := range out {
		flat = append(flat, o...)
	}
	s.Rows.Add(int64(len(rows)))
	writeJSON(w, http.StatusOK, kserve.InferResponse{ModelName: s.name, ModelVersion: "1", ID: req.ID,
		Outputs: []kserve.Tensor{{Name: "scores", Shape: []int64{int64(len(out)), int64(m)}, Datatype: "FP32", Data: flat}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
