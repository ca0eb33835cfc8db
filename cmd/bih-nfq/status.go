package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// defaultStatusSocket is where `bih-nfq run` answers `bih-nfq status`.
const defaultStatusSocket = "/run/bih-nfq/status.sock"

// Status is what the daemon reports over its status socket (JSON).
type Status struct {
	State    string          `json:"state"` // starting, running, stopping
	Mode     string          `json:"mode"`  // host or router
	Version  string          `json:"version"`
	Started  time.Time       `json:"started"`
	Ruleset  string          `json:"ruleset"` // e.g. "installed (xtables NFQUEUE target)", "external"
	NativeV4 bool            `json:"native_ipv4"`
	Source4  string          `json:"source4,omitempty"` // applications' IPv4 source
	Source6  string          `json:"source6,omitempty"` // IPv6 source of translated traffic
	Pools    []PoolStatus    `json:"pools"`
	Mappings []MappingStatus `json:"mappings,omitempty"`
	// Translated: 4to6_packets, 4to6_bytes, 6to4_packets, 6to4_bytes,
	// errors_ipv4, errors_ipv6, and 4to6_whole: TCP super-packets that left
	// whole through the TUN link (their segments are in 4to6_packets).
	Translated map[string]uint64 `json:"translated"`
	// TranslatedByMode splits Translated by mode: host, router.
	TranslatedByMode map[string]map[string]uint64 `json:"translated_by_mode,omitempty"`
	// LANHosts are the router-mode hosts holding mappings.
	LANHosts []LANHostStatus   `json:"lan_hosts,omitempty"`
	Drops    map[string]uint64 `json:"drops"`
	Queues   []QueueStatus     `json:"queues"`
	DNS      map[string]uint64 `json:"dns,omitempty"`
}

// LANHostStatus is one LAN host in router mode: its IPv6 identity and the
// pool mappings its DNS lookups hold, against its limit (0: none).
type LANHostStatus struct {
	IPv4     string `json:"ipv4"`
	IPv6     string `json:"ipv6"`
	Mappings int    `json:"mappings"`
	Limit    int    `json:"limit,omitempty"`
}

// PoolStatus is one destination pool's usage.
type PoolStatus struct {
	Prefix string `json:"prefix"`
	Active bool   `json:"active"` // new mappings come from it
	Used   int    `json:"used"`
	Size   int    `json:"size"`
}

// MappingStatus is one IPv4⇄IPv6 mapping.
type MappingStatus struct {
	IPv4     string    `json:"ipv4"`
	IPv6     string    `json:"ipv6"`
	Static   bool      `json:"static,omitempty"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Expires  time.Time `json:"dns_expires,omitzero"`
	Owner    string    `json:"requester,omitempty"`
}

// QueueStatus joins a worker's counters with the kernel's view of its queue.
type QueueStatus struct {
	Num        uint16 `json:"queue"`
	Role       string `json:"role"` // translation or dns
	Received   uint64 `json:"received"`
	Emitted    uint64 `json:"emitted"`
	EmitFails  uint64 `json:"emit_failures"`
	UDPTrains  uint64 `json:"udp_trains"` // runs of UDP datagrams that left as one (in Emitted)
	Waiting    uint64 `json:"kernel_waiting"`
	QueueDrops uint64 `json:"kernel_queue_drops"`
	UserDrops  uint64 `json:"kernel_user_drops"`
}

// serveStatus answers each connection on a root-only unix socket at path with
// the JSON of snapshot(). The returned function closes it and removes the
// socket.
func serveStatus(ctx context.Context, path string, snapshot func() Status) (func(), error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	// A socket left by a killed daemon would make Listen fail.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				json.NewEncoder(c).Encode(snapshot()) // a client gone away is not our error
			}()
		}
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	return func() {
		stop()
		ln.Close()
		os.Remove(path)
	}, nil
}

func init() {
	register("status", "show the running daemon's state, pools, mappings and counters", cmdStatus)
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", defaultStatusSocket, "the daemon's status socket")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	mappings := fs.Bool("mappings", false, "list every mapping")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: status takes no arguments", errUsage)
	}
	c, err := net.DialTimeout("unix", *socket, 2*time.Second)
	if err != nil {
		return fmt.Errorf("is the daemon running? %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	raw, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if *asJSON {
		_, err := stdout.Write(raw)
		return err
	}
	var st Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	printStatus(stdout, &st, *mappings)
	return nil
}

func printStatus(w io.Writer, st *Status, all bool) {
	fmt.Fprintf(w, "bih-nfq %s: %s, %s mode, up %s\n", st.Version, st.State, st.Mode,
		time.Since(st.Started).Truncate(time.Second))
	fmt.Fprintf(w, "ruleset: %s; native IPv4: %v\n", st.Ruleset, st.NativeV4)
	if st.Source6 != "" {
		fmt.Fprintf(w, "translating %s ⇄ %s\n", st.Source4, st.Source6)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\npool\tactive\tused\tsize")
	for _, p := range st.Pools {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%d\n", p.Prefix, p.Active, p.Used, p.Size)
	}
	fmt.Fprintln(tw, "\nqueue\trole\treceived\temitted\temit-fail\tudp-trains\tk-waiting\tk-qdrop\tk-udrop")
	for _, q := range st.Queues {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", q.Num, q.Role, q.Received, q.Emitted,
			q.EmitFails, q.UDPTrains, q.Waiting, q.QueueDrops, q.UserDrops)
	}
	tw.Flush()
	if len(st.LANHosts) > 0 {
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nlan host\tipv6\tmappings\tlimit")
		for _, h := range st.LANHosts {
			limit := "-"
			if h.Limit > 0 {
				limit = fmt.Sprint(h.Limit)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", h.IPv4, h.IPv6, h.Mappings, limit)
		}
		tw.Flush()
	}
	printCounts(w, "drops", st.Drops)
	printCounts(w, "dns", st.DNS)
	fmt.Fprintf(w, "\nmappings: %d\n", len(st.Mappings))
	if all && len(st.Mappings) > 0 {
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ipv4\tipv6\tage\tidle\trequester")
		for _, m := range st.Mappings {
			idle := "-"
			if !m.LastUsed.IsZero() {
				idle = time.Since(m.LastUsed).Truncate(time.Second).String()
			}
			owner := m.Owner
			if m.Static {
				owner = "static"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.IPv4, m.IPv6,
				time.Since(m.Created).Truncate(time.Second), idle, owner)
		}
		tw.Flush()
	}
}

func printCounts(w io.Writer, title string, m map[string]uint64) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	fmt.Fprintf(w, "\n%s: %s\n", title, strings.Join(parts, " "))
}
