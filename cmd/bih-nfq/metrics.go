package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are read from the daemon's counters at scrape time, never updated
// per packet through the Prometheus client: the data path only bumps atomics.
var (
	descTranslated = prometheus.NewDesc("bih_nfq_translated_packets_total",
		"Packets translated, by direction and mode (host, router).", []string{"direction", "mode"}, nil)
	descTranslatedBytes = prometheus.NewDesc("bih_nfq_translated_bytes_total",
		"Bytes of translated packets emitted, by direction and mode.", []string{"direction", "mode"}, nil)
	descICMPErrors = prometheus.NewDesc("bih_nfq_generated_icmp_errors_total",
		"ICMP errors generated back to senders, by the family they were sent in and mode.", []string{"family", "mode"}, nil)
	descWhole = prometheus.NewDesc("bih_nfq_tcp_whole_total",
		"IPv4 TCP super-packets translated whole and handed to the kernel to cut (queue.tcp-gso forward), by mode.", []string{"mode"}, nil)
	descLANHost = prometheus.NewDesc("bih_nfq_lan_host_mappings",
		"Pool mappings held by a LAN host's lookups (router mode).", []string{"host"}, nil)
	descDrops = prometheus.NewDesc("bih_nfq_drops_total",
		"Packets or DNS messages refused, by reason.", []string{"reason"}, nil)
	descDNS = prometheus.NewDesc("bih_nfq_dns_total",
		"DNS responses handled by the ENR, by outcome.", []string{"outcome"}, nil)
	descPoolUsed = prometheus.NewDesc("bih_nfq_pool_used_addresses",
		"Addresses of a destination pool in use.", []string{"pool"}, nil)
	descPoolSize = prometheus.NewDesc("bih_nfq_pool_size_addresses",
		"Usable addresses of a destination pool.", []string{"pool"}, nil)
	descQueueRecv = prometheus.NewDesc("bih_nfq_queue_received_total",
		"Packets received from an NFQUEUE queue.", []string{"queue", "role"}, nil)
	descQueueKDrops = prometheus.NewDesc("bih_nfq_queue_kernel_drops_total",
		"Packets the kernel dropped for a queue (from /proc/net/netfilter/nfnetlink_queue).", []string{"queue", "kind"}, nil)
	descQueueWaiting = prometheus.NewDesc("bih_nfq_queue_waiting_packets",
		"Packets waiting in the kernel for a verdict.", []string{"queue"}, nil)
	descUp = prometheus.NewDesc("bih_nfq_running", "1 while the daemon translates.", []string{"mode"}, nil)
)

// statusCollector exports a Status snapshot.
type statusCollector struct{ snapshot func() Status }

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTranslated, descTranslatedBytes, descICMPErrors, descDrops,
		descDNS, descPoolUsed, descPoolSize, descQueueRecv, descQueueKDrops, descQueueWaiting, descUp, descLANHost, descWhole} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.snapshot()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	up := 0.0
	if st.State == "running" {
		up = 1
	}
	gauge(descUp, up, st.Mode)
	for mode, t := range st.TranslatedByMode {
		for _, dir := range []string{"4to6", "6to4"} {
			counter(descTranslated, t[dir+"_packets"], dir, mode)
			counter(descTranslatedBytes, t[dir+"_bytes"], dir, mode)
		}
		for _, fam := range []string{"ipv4", "ipv6"} {
			counter(descICMPErrors, t["errors_"+fam], fam, mode)
		}
		counter(descWhole, t["4to6_whole"], mode)
	}
	for _, h := range st.LANHosts {
		gauge(descLANHost, float64(h.Mappings), h.IPv4)
	}
	for reason, v := range st.Drops {
		counter(descDrops, v, reason)
	}
	for outcome, v := range st.DNS {
		counter(descDNS, v, outcome)
	}
	for _, p := range st.Pools {
		gauge(descPoolUsed, float64(p.Used), p.Prefix)
		gauge(descPoolSize, float64(p.Size), p.Prefix)
	}
	for _, q := range st.Queues {
		n := strconv.Itoa(int(q.Num))
		counter(descQueueRecv, q.Received, n, q.Role)
		counter(descQueueKDrops, q.QueueDrops, n, "queue_full")
		counter(descQueueKDrops, q.UserDrops, n, "socket_full")
		gauge(descQueueWaiting, float64(q.Waiting), n)
	}
}

// serveMetrics serves /metrics on addr, which must be a loopback address
// unless allowRemote: the counters say which names a host resolves.
func serveMetrics(ctx context.Context, addr string, allowRemote bool, snapshot func() Status) (func(), error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); !allowRemote && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("metrics address %q: not a loopback address", addr)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(statusCollector{snapshot}); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			// The listener is ours; Serve only fails when it closes.
			return
		}
	}()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}
	context.AfterFunc(ctx, stop)
	return stop, nil
}
