package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
)

// validateNetwork checks the addresses and the security of c before anything starts: a
// node must not be reachable from the network in the clear unless Insecure says so, and
// must advertise addresses its peers can dial. It logs at Warn what Insecure allows.
func (c *NodeConfig) validateNetwork(logger *slog.Logger) error {
	if (c.ServerTLS == nil) != (c.ClientTLS == nil) {
		return errors.New("node config: ServerTLS and ClientTLS go together (each node both accepts and opens connections)")
	}
	if c.MaxMessageSize < 0 {
		return fmt.Errorf("node config: MaxMessageSize %d: want 0 (the default) or more", c.MaxMessageSize)
	}
	if c.Advertise != "" && net.ParseIP(c.Advertise) == nil {
		return fmt.Errorf("node config: Advertise %q: want an IP address", c.Advertise)
	}
	gossip := c.Membership.BindAddr
	if gossip == "" {
		gossip = "127.0.0.1:0"
	}
	transport := c.RemoteAddr
	if transport == "" {
		transport = "127.0.0.1:0"
	}
	for _, a := range []struct{ what, addr string }{{"gossip address", gossip}, {"remote (actor transport) address", transport}} {
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			return fmt.Errorf("node config: %s %q: %w", a.what, a.addr, err)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() && c.Advertise == "" {
			return fmt.Errorf("node config: %s %q listens on every interface, and peers cannot dial %s: set Advertise to the IP they reach this node at", a.what, a.addr, host)
		}
	}
	var clear []string
	if !isLoopback(gossip) && len(c.Membership.Key) == 0 {
		clear = append(clear, fmt.Sprintf("gossip on %s has no Key (memberlist would accept any node and send membership in the clear)", gossip))
	}
	if !isLoopback(transport) && c.ServerTLS == nil {
		clear = append(clear, fmt.Sprintf("the actor transport on %s has no TLS (anyone who reaches it could send actor messages)", transport))
	}
	for _, s := range clear {
		if !c.Insecure {
			return fmt.Errorf("node config: %s: give it one, or set Insecure on a trusted network", s)
		}
		logger.Warn("insecure: "+s, "insecure", true)
	}
	if c.AdminAddr != "" && !isLoopback(c.AdminAddr) {
		logger.Warn("the admin endpoint is plain HTTP without authentication and listens beyond loopback: keep it behind a firewall", "admin", c.AdminAddr)
	}
	return nil
}

// isLoopback says whether host:port (or a bare host) listens on loopback only: a loopback
// IP, "localhost", or no host, which Eddy's listeners read as 127.0.0.1. A name other than
// localhost may resolve to anything, so it is not.
func isLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if host == "" || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
