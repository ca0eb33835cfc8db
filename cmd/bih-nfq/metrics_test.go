package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestMetricsFromStatus(t *testing.T) {
	st := Status{
		State: "running", Mode: "host+router",
		Translated: map[string]uint64{"4to6_packets": 12, "6to4_bytes": 1234, "errors_ipv4": 2},
		TranslatedByMode: map[string]map[string]uint64{
			"host":   {"4to6_packets": 5, "6to4_bytes": 1234, "errors_ipv4": 2},
			"router": {"4to6_packets": 7},
		},
		LANHosts: []LANHostStatus{{IPv4: "192.168.1.10", IPv6: "2001:db8:1:64::c0a8:10a", Mappings: 3, Limit: 409}},
		Drops:    map[string]uint64{"bad_checksum": 7},
		DNS:      map[string]uint64{"synthesized": 3},
		Pools:    []PoolStatus{{Prefix: "10.170.160.0/20", Used: 4, Size: 4094}},
		Queues:   []QueueStatus{{Num: 1, Role: "dns", Received: 9, UserDrops: 1}},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop, err := serveMetrics(ctx, addr, false, func() Status { return st })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`bih_nfq_running{mode="host+router"} 1`,
		`bih_nfq_translated_packets_total{direction="4to6",mode="host"} 5`,
		`bih_nfq_translated_packets_total{direction="4to6",mode="router"} 7`,
		`bih_nfq_translated_bytes_total{direction="6to4",mode="host"} 1234`,
		`bih_nfq_generated_icmp_errors_total{family="ipv4",mode="host"} 2`,
		`bih_nfq_lan_host_mappings{host="192.168.1.10"} 3`,
		`bih_nfq_drops_total{reason="bad_checksum"} 7`,
		`bih_nfq_dns_total{outcome="synthesized"} 3`,
		`bih_nfq_pool_used_addresses{pool="10.170.160.0/20"} 4`,
		`bih_nfq_queue_received_total{queue="1",role="dns"} 9`,
		`bih_nfq_queue_kernel_drops_total{kind="socket_full",queue="1"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if _, err := serveMetrics(ctx, "0.0.0.0:0", false, func() Status { return st }); err == nil {
		t.Error("a non-loopback metrics address was accepted")
	}
}
