package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

// startTimeout bounds how long the server may take to answer S3 requests.
const startTimeout = 90 * time.Second

// Server is a running SeaweedFS server with its S3 gateway.
type Server struct {
	// Endpoint is the S3 gateway's URL, http://127.0.0.1:PORT.
	Endpoint string
	// Client is an S3 client for Endpoint (path-style, unsigned: the server has no
	// credentials configured).
	Client *s3.Client
}

// envOr returns the environment variable name, or def when it is empty. Benchmarks that
// write hundreds of MB (graph's BenchmarkStreamedCheckpoint) set EDDY_WEED_VOLUME_MB and
// EDDY_WEED_VOLUMES for larger volumes.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// WeedPath returns where the weed binary is looked for.
func WeedPath() string {
	if p := os.Getenv("EDDY_WEED"); p != "" {
		return p
	}
	cache := os.Getenv("EDDY_CACHE_DIR")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "eddy")
	}
	return filepath.Join(cache, "bin", "weed")
}

// requireWeed returns the weed binary's path, or skips (fails in CI) the test.
func requireWeed(t testing.TB) string {
	t.Helper()
	path := WeedPath()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	msg := fmt.Sprintf("SeaweedFS's weed binary (a real S3 server) is not at %s: build it with `bash .ci/install-seaweedfs.sh` or set EDDY_WEED", path)
	if os.Getenv("CI") == "true" || os.Getenv("EDDY_REQUIRE_WEED") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start starts a SeaweedFS server (master, volume, filer and S3 gateway in one process) in
// a temporary directory and waits until its S3 gateway takes writes. It is killed, with
// its whole process group, when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	weed := requireWeed(t)
	// A short path of its own, not t.TempDir(): weed puts Unix sockets in it, whose
	// paths must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "eddy-weed-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ports := freePorts(t, 8)
	logPath := filepath.Join(dir, "weed.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := func(i int) string { return strconv.Itoa(ports[i]) }
	cmd := exec.Command(weed, "server",
		"-dir="+dir,
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port="+p(0), "-master.port.grpc="+p(1),
		"-volume.port="+p(2), "-volume.port.grpc="+p(3),
		"-filer.port="+p(4), "-filer.port.grpc="+p(5),
		"-s3", "-s3.port="+p(6), "-s3.port.grpc="+p(7),
		// Off: they listen on fixed ports, which two servers (two test packages) would
		// share.
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		"-filer.localSocket="+filepath.Join(dir, "filer.sock"), "-s3.localSocket="+filepath.Join(dir, "s3.sock"),
		// Small volumes: the tests write kilobytes, and the default (30 GB) volumes
		// reserve more disk than a CI machine may have.
		"-master.volumeSizeLimitMB="+envOr("EDDY_WEED_VOLUME_MB", "64"), "-volume.max="+envOr("EDDY_WEED_VOLUMES", "16"),
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A group of its own: the cleanup kills weed and anything it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s server: %v", weed, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		logFile.Close()
	})

	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	srv := &Server{Endpoint: "http://127.0.0.1:" + p(6)}
	srv.Client = s3.New(s3.Options{
		BaseEndpoint: aws.String(srv.Endpoint),
		Region:       "us-east-1",
		UsePathStyle: true,
		Credentials:  aws.AnonymousCredentials{},
		HTTPClient:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		// The server checks checksums it is sent, but asks for none.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})

	// Ready when a bucket can be created and an object written in it: the master has
	// volumes, the filer and the gateway are up.
	start := time.Now()
	var lastErr error
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("weed server exited while starting: %v\n%s", err, tail(logPath))
		default:
		}
		if time.Since(start) > startTimeout {
			t.Fatalf("weed server: S3 not ready in %v: %v\n%s", startTimeout, lastErr, tail(logPath))
		}
		lastErr = srv.probe()
		if lastErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("SeaweedFS S3 at %s ready in %v (log %s)", srv.Endpoint, time.Since(start).Round(time.Millisecond), logPath)
	return srv
}

// probe creates the bucket "probe" (if needed) and writes an object in it.
func (s *Server) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("probe")})
	if err != nil && !strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") && !strings.Contains(err.Error(), "BucketAlreadyExists") {
		return err
	}
	_, err = s.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("probe"), Key: aws.String("ready"), Body: bytes.NewReader([]byte("ok"))})
	return err
}

// URL returns a gocloud.dev URL of bucket on this server, for messages and for
// blob.OpenBucket (which then reads AWS settings from the environment).
func (s *Server) URL(bucket string) string {
	return "s3://" + bucket + "?endpoint=" + s.Endpoint + "&use_path_style=true&region=us-east-1&anonymous=true"
}

// Bucket creates bucket name on the server and opens it; it is closed when the test ends.
func (s *Server) Bucket(t testing.TB, name string) *blob.Bucket {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	b, err := s3blob.OpenBucket(ctx, s.Client, name, &s3blob.Options{
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
	})
	if err != nil {
		t.Fatalf("open bucket %s: %v", name, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// freePorts returns n distinct free loopback ports (free when asked: another process may
// take one before weed binds it, which makes the start fail loudly, not wrongly).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// tail returns the end of the server's log, for a failure message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
