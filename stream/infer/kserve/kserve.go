// Package kserve is a client of the Open Inference Protocol (KServe v2) over REST, which
// Triton, KServe, Seldon MLServer and OpenVINO Model Server speak. A Client is an
// infer.Model.
//
//	c, err := kserve.Dial(ctx, "http://triton:8000", "fraud", kserve.Version("3"))
//	if err != nil { ... }
//	defer c.Close()
//	scored := infer.Stage(records, c, features)
//
// Infer posts a batch as one FP32 tensor [rows, width] to
// /v2/models/{name}[/versions/{v}]/infer and reads the first output (or the one named by
// Output) as [rows, m]. Connections are kept alive and reused; each request's deadline is
// its context's (the inference stage's Timeout). A 4xx answer but 408 and 429 is an
// infer.Permanent error, not retried; 5xx, 408, 429 and network errors are retried by the
// stage.
package kserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/eddyflow/eddy/stream/infer"
)

// Client talks to one model (one version, or the server's choice) on one server.
type Client struct {
	base, model, version string
	http                 *http.Client
	// input and output are the tensor names; width the input's fixed second dimension
	// (0: not known, rows are sent as they are).
	input, output string
	width         int
	// owned says Close closes the transport's idle connections (Dial made the client).
	owned bool
}

// Option configures a Client.
type Option func(*Client)

// Version pins the model version; without it the server picks.
func Version(v string) Option { return func(c *Client) { c.version = v } }

// HTTPClient sets the HTTP client (default: one with keep-alive connections, up to 64 idle
// per host, and no overall timeout: each request's context carries its deadline).
func HTTPClient(h *http.Client) Option {
	return func(c *Client) { c.http, c.owned = h, false }
}

// Input names the input tensor (default: the first input in the model's metadata).
func Input(name string) Option { return func(c *Client) { c.input = name } }

// Output names the output tensor to read (default: the first in the answer).
func Output(name string) Option { return func(c *Client) { c.output = name } }

// Width sets the input width without asking the server's metadata.
func Width(n int) Option { return func(c *Client) { c.width = n } }

// New returns a client of model at the server base (e.g. "http://localhost:8000") without
// talking to it; the input name defaults to "input" unless given. Dial checks the server.
func New(base, model string, opts ...Option) *Client {
	c := &Client{base: strings.TrimSuffix(base, "/"), model: model, owned: true}
	c.http = &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Dial returns a client of model after checking that the server is live and the model
// ready, and reading the model's metadata for its input name and width.
func Dial(ctx context.Context, base, model string, opts ...Option) (*Client, error) {
	c := New(base, model, opts...)
	if err := c.Live(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.ModelReady(ctx); err != nil {
		c.Close()
		return nil, err
	}
	md, err := c.Metadata(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	if len(md.Inputs) == 0 {
		c.Close()
		return nil, fmt.Errorf("model %s has no inputs in its metadata", c.model)
	}
	in := md.Inputs[0]
	if c.input != "" {
		found := false
		for _, t := range md.Inputs {
			if t.Name == c.input {
				in, found = t, true
			}
		}
		if !found {
			c.Close()
			return nil, fmt.Errorf("model %s has no input %q", c.model, c.input)
		}
	}
	c.input = in.Name
	if c.width == 0 && len(in.Shape) == 2 && in.Shape[1] > 0 {
		c.width = int(in.Shape[1])
	}
	return c, nil
}

// Close releases the idle connections of the client's own transport.
func (c *Client) Close() error {
	if c.owned {
		c.http.CloseIdleConnections()
	}
	return nil
}

// InputWidth is the input's fixed width from the metadata (0 if unknown).
func (c *Client) InputWidth() int { return c.width }

// TensorMetadata describes one input or output of a model.
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// Metadata is a model's metadata (GET /v2/models/{name}[/versions/{v}]).
type Metadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions,omitempty"`
	Platform string           `json:"platform"`
	Inputs   []TensorMetadata `json:"inputs"`
	Outputs  []TensorMetadata `json:"outputs"`
}

// Tensor is a tensor of an inference request or response; Data is row-major, flat.
type Tensor struct {
	Name     string    `json:"name"`
	Shape    []int64   `json:"shape"`
	Datatype string    `json:"datatype"`
	Data     []float32 `json:"data"`
}

// InferRequest is the body of POST .../infer.
type InferRequest struct {
	ID      string            `json:"id,omitempty"`
	Inputs  []Tensor          `json:"inputs"`
	Outputs []RequestedOutput `json:"outputs,omitempty"`
}

// RequestedOutput names an output the request wants.
type RequestedOutput struct {
	Name string `json:"name"`
}

// InferResponse is the body of a successful answer to POST .../infer.
type InferResponse struct {
	ModelName    string   `json:"model_name"`
	ModelVersion string   `json:"model_version,omitempty"`
	ID           string   `json:"id,omitempty"`
	Outputs      []Tensor `json:"outputs"`
}

// modelPath is /v2/models/{name}[/versions/{v}].
func (c *Client) modelPath() string {
	p := "/v2/models/" + url.PathEscape(c.model)
	if c.version != "" {
		p += "/versions/" + url.PathEscape(c.version)
	}
	return p
}

// Live checks GET /v2/health/live.
func (c *Client) Live(ctx context.Context) error {
	return c.get(ctx, "/v2/health/live", nil)
}

// Ready checks GET /v2/health/ready.
func (c *Client) Ready(ctx context.Context) error {
	return c.get(ctx, "/v2/health/ready", nil)
}

// ModelReady checks GET /v2/models/{name}[/versions/{v}]/ready.
func (c *Client) ModelReady(ctx context.Context) error {
	return c.get(ctx, c.modelPath()+"/ready", nil)
}

// Metadata reads the model's metadata.
func (c *Client) Metadata(ctx context.Context) (Metadata, error) {
	var md Metadata
	err := c.get(ctx, c.modelPath(), &md)
	return md, err
}

func (c *Client) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return c.do(req, into)
}

// Infer posts rows as one FP32 tensor and returns the output's rows.
func (c *Client) Infer(ctx context.Context, rows [][]float32) ([][]float32, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	width := len(rows[0])
	if c.width > 0 {
		width = c.width
	}
	flat := make([]float32, 0, len(rows)*width)
	for i, r := range rows {
		if len(r) != width {
			return nil, infer.Permanent(fmt.Errorf("row %d has %d values; want %d", i, len(r), width))
		}
		flat = append(flat, r...)
	}
	name := c.input
	if name == "" {
		name = "input"
	}
	body := InferRequest{Inputs: []Tensor{{Name: name, Shape: []int64{int64(len(rows)), int64(width)}, Datatype: "FP32", Data: flat}}}
	if c.output != "" {
		body.Outputs = []RequestedOutput{{Name: c.output}}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, infer.Permanent(fmt.Errorf("encode the request: %w", err))
	}
	path := c.modelPath() + "/infer"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, infer.Permanent(fmt.Errorf("POST %s: %w", path, err))
	}
	req.Header.Set("Content-Type", "application/json")
	var resp InferResponse
	if err := c.do(req, &resp); err != nil {
		return nil, err
	}
	res, err := answerRows(resp, c.output, len(rows))
	if err != nil {
		return nil, infer.Permanent(fmt.Errorf("POST %s: %w", path, err))
	}
	return res, nil
}

// answerRows cuts the output tensor named output (or the first) of an answer into n rows.
func answerRows(resp InferResponse, output string, n int) ([][]float32, error) {
	out, err := pick(resp.Outputs, output)
	if err != nil {
		return nil, err
	}
	if len(out.Shape) != 2 || out.Shape[0] != int64(n) || out.Shape[1] < 0 || out.Shape[1] > int64(len(out.Data)) ||
		int64(len(out.Data)) != out.Shape[0]*out.Shape[1] {
		return nil, fmt.Errorf("output %q has shape %v and %d values for %d rows", out.Name, out.Shape, len(out.Data), n)
	}
	m := int(out.Shape[1])
	res := make([][]float32, n)
	for i := range res {
		res[i] = out.Data[i*m : (i+1)*m : (i+1)*m]
	}
	return res, nil
}

func pick(outs []Tensor, output string) (Tensor, error) {
	if len(outs) == 0 {
		return Tensor{}, errors.New("the answer has no outputs")
	}
	if output == "" {
		return outs[0], nil
	}
	for _, o := range outs {
		if o.Name == output {
			return o, nil
		}
	}
	return Tensor{}, fmt.Errorf("the answer has no output %q", output)
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Method, Path string
	Code         int
	// Message is the server's {"error": ...}, or the start of its body.
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, http.StatusText(e.Code), e.Message)
}

// do sends req and decodes a 2xx JSON answer into into (nil: the body is dropped). The body
// is always read to the end and closed, so that the connection is reused.
func (c *Client) do(req *http.Request, into any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		se := &StatusError{Method: req.Method, Path: req.URL.Path, Code: resp.StatusCode}
		var msg struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &msg) == nil && msg.Error != "" {
			se.Message = msg.Error
		} else {
			se.Message = string(body[:min(len(body), 200)])
		}
		if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return infer.Permanent(se)
		}
		return se
	}
	if into == nil {
		return nil
	}
	if err := json.Unmarshal(body, into); err != nil {
		return infer.Permanent(fmt.Errorf("%s %s: decode the answer: %w", req.Method, req.URL.Path, err))
	}
	return nil
}
