// Command kafkabroker is a standalone in-memory Kafka broker for development and tests
// (franz-go's kfake: the real Kafka protocol, transactions included, nothing on disk).
//
//	go run ./examples/kafkabroker -listen 127.0.0.1:9092 -topics clicks:4,counts:4
//
// It prints one line, "listening on ADDR" (ADDR the address it accepts connections on, with
// the port it got when -listen asked for port 0), once it accepts connections, and runs
// until SIGINT or SIGTERM. Everything it holds is lost when it stops.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "kafkabroker:", err)
		}
		os.Exit(1)
	}
}

// topicSpec is one NAME:PARTITIONS of -topics.
type topicSpec struct {
	name       string
	partitions int32
}

func parseTopics(s string) ([]topicSpec, error) {
	if s == "" {
		return nil, nil
	}
	var out []topicSpec
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		name, ps, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("-topics: %q is not NAME:PARTITIONS", item)
		}
		p, err := strconv.ParseInt(ps, 10, 32)
		if err != nil || p < 1 {
			return nil, fmt.Errorf("-topics: %q: partitions must be a number ≥ 1", item)
		}
		if seen[name] {
			return nil, fmt.Errorf("-topics: topic %q twice", name)
		}
		seen[name] = true
		out = append(out, topicSpec{name, int32(p)})
	}
	return out, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kafkabroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9092", "`ADDR` (host:port) to accept Kafka clients on; port 0 picks a free one")
	topicsFlag := fs.String("topics", "", "topics to create, `NAME:PARTITIONS,...`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	topics, err := parseTopics(*topicsFlag)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	// Listen first, so that a bad address is an error here and the line printed below is
	// true: the socket accepts connections from now on.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.ListenFn(func(string, string) (net.Listener, error) { return ln, nil })}
	for _, t := range topics {
		opts = append(opts, kfake.SeedTopics(t.partitions, t.name))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		ln.Close()
		return fmt.Errorf("start broker: %w", err)
	}
	defer cluster.Close()
	for _, t := range topics {
		logger.Info("topic", "name", t.name, "partitions", t.partitions)
	}
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	<-ctx.Done()
	logger.Info("stopping")
	return nil
}
