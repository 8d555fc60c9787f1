package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
)

// Config says how to reach a Kafka cluster. It is shared by sources and sinks.
type Config struct {
	// Brokers are the seed brokers, host:port. At least one is required.
	Brokers []string
	// TLS, when not nil, makes every connection TLS with this configuration.
	TLS *tls.Config
	// SASL mechanisms (github.com/twmb/franz-go/pkg/sasl/...) to authenticate with, in order
	// of preference; none for no authentication.
	SASL []sasl.Mechanism
	// ClientID names the clients in the brokers' logs; "eddy" when empty.
	ClientID string
	// Logger receives what the connectors log (not franz-go's own chatter); slog.Default()
	// when nil.
	Logger *slog.Logger
	// Opts are further franz-go options, applied after Eddy's own: an escape hatch (a dialer,
	// a rack). Options that change what Eddy relies on (consumed partitions, transactional
	// ids, isolation) break the connectors' guarantees.
	Opts []kgo.Opt
}

func (c Config) validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka config: no brokers")
	}
	for _, b := range c.Brokers {
		if b == "" {
			return errors.New("kafka config: an empty broker address")
		}
	}
	return nil
}

func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// clientOpts returns the franz-go options every client of c starts with, then extra, then
// c.Opts.
func (c Config) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	id := c.ClientID
	if id == "" {
		id = "eddy"
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(id)}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS))
	}
	if len(c.SASL) > 0 {
		opts = append(opts, kgo.SASL(c.SASL...))
	}
	opts = append(opts, extra...)
	return append(opts, c.Opts...)
}

// CreateTopics creates each topic that does not exist yet with the given number of
// partitions (replication factor: the broker's default). Topics that exist are left as they
// are, whatever their partition count.
func CreateTopics(ctx context.Context, cfg Config, partitions int32, topics ...string) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if partitions < 1 {
		return fmt.Errorf("create topics %v: %d partitions, want at least 1", topics, partitions)
	}
	cl, err := kgo.NewClient(cfg.clientOpts()...)
	if err != nil {
		return fmt.Errorf("create topics: new client: %w", err)
	}
	defer cl.Close()
	return createTopics(ctx, kadm.NewClient(cl), partitions, topics)
}

func createTopics(ctx context.Context, adm *kadm.Client, partitions int32, topics []string) error {
	resps, err := adm.CreateTopics(ctx, partitions, -1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}
