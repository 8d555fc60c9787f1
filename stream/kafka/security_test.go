package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/eddyflow/eddy/stream"
)

// selfSigned returns a server TLS config for 127.0.0.1 and a client one that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// TLS and SASL in Config reach franz-go: against a broker that requires them, the source
// and both sinks work with them, and fail without them.
func TestTLSAndSASLPassedThrough(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	for _, tt := range []struct {
		name   string
		broker []kfake.Opt
		secure func(*Config)
	}{
		{"tls", []kfake.Opt{kfake.TLS(serverTLS)}, func(c *Config) { c.TLS = clientTLS }},
		{"sasl plain", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", "eddy", "secret")},
			func(c *Config) { c.SASL = []sasl.Mechanism{plain.Auth{User: "eddy", Pass: "secret"}.AsMechanism()} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "t")}, tt.broker...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cfg := Config{Brokers: c.ListenAddrs()}
			tt.secure(&cfg)

			alo, err := AtLeastOnce(cfg, "t", KeyedValues(stream.JSON[string](), nil))
			if err != nil {
				t.Fatal(err)
			}
			if err := alo.WriteBatch([]stream.Record[string]{{Value: "a"}}); err != nil {
				t.Fatal(err)
			}
			if err := alo.PreCommit(0, 1); err != nil {
				t.Fatalf("flush over %s: %v", tt.name, err)
			}
			alo.Close()
			eo, err := ExactlyOnce(cfg, "t", KeyedValues(stream.JSON[string](), nil), "secure")
			if err != nil {
				t.Fatal(err)
			}
			if err := eo.Recover(0, func(int) bool { return true }); err != nil {
				t.Fatalf("recover over %s: %v", tt.name, err)
			}
			if err := eo.WriteBatchFor(0, []stream.Record[string]{{Value: "b"}}); err != nil {
				t.Fatal(err)
			}
			if err := eo.PreCommit(0, 1); err != nil {
				t.Fatalf("pre-commit over %s: %v", tt.name, err)
			}
			if err := eo.Commit(1); err != nil {
				t.Fatalf("commit over %s: %v", tt.name, err)
			}
			eo.Close()
			src := Source(cfg, []string{"t"}, Values(stream.JSON[string]()))
			splits, err := src.Splits(1)
			if err != nil {
				t.Fatal(err)
			}
			defer splits[0].Close()
			if got := readSplit(t, splits[0], 2).values(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
				t.Errorf("read %q over %s, want [a b]", got, tt.name)
			}

			// Without them the broker does not talk: the first call fails instead of reading.
			plainCfg := Config{Brokers: c.ListenAddrs()}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := CreateTopics(ctx, plainCfg, 1, "other"); err == nil {
				t.Errorf("a client without %s was served", tt.name)
			}
		})
	}
}
