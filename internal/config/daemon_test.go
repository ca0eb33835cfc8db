package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDaemonSectionsGood(t *testing.T) {
	c, err := Parse("good.yaml", []byte(`
pool:
  pools: [10.99.0.0/20]
  grace: 1m
  idle-timeout: 5m
  requester-rate: -1
  requester-share: 0.25
host:
  link: xl0
  source4: 192.0.0.9
  source6: 2001:db8::77
nft:
  table: mine
  mark: 77
  rules: external
queue:
  count: 2
  translation: 10
  dns: 5
  fail-open-dns: false
  fail-open-translation: true
daemon:
  state-dir: /tmp/st
  status-socket: /tmp/s.sock
  metrics: "off"
  log-level: debug
`))
	if err != nil {
		t.Fatal(err)
	}
	pools, err := c.Pool.Prefixes()
	if err != nil || len(pools) != 1 || pools[0].String() != "10.99.0.0/20" {
		t.Errorf("pools %v %v", pools, err)
	}
	s4, s6, err := c.Host.Addrs()
	if err != nil || s4.String() != "192.0.0.9" || s6.String() != "2001:db8::77" {
		t.Errorf("host addrs %v %v %v", s4, s6, err)
	}
	if m, err := c.NFT.MarkValue(); err != nil || m != 77 {
		t.Errorf("mark %v %v", m, err)
	}
	if c.Pool.Grace != time.Minute || c.Queue.Count != 2 || c.Queue.FailOpenDNS || !c.Queue.FailOpenTranslation ||
		c.NFT.Rules != RulesExternal || c.Daemon.Metrics != "off" {
		t.Errorf("decoded %+v", c)
	}
	d := Default()
	if m, err := d.NFT.MarkValue(); err != nil || m != 0x62696800 {
		t.Errorf("default mark %#x %v", m, err)
	}
	if !d.Queue.FailOpenDNS || d.Queue.FailOpenTranslation {
		t.Errorf("default fail-open: dns %v translation %v, want true false", d.Queue.FailOpenDNS, d.Queue.FailOpenTranslation)
	}
}

func TestDaemonSectionsBad(t *testing.T) {
	for _, tc := range []struct{ yaml, key string }{
		{"pool:\n  pools: []\n", "pool.pools"},
		{"pool:\n  pools: [10.0.0.1/20]\n", "pool.pools[0]"},
		{"pool:\n  pools: [10.0.0.0/8]\n", "pool.pools[0]"},
		{"pool:\n  pools: [10.0.0.0/20, 10.0.8.0/24]\n", "pool.pools[1]"},
		{"pool:\n  pools: [2001:db8::/64]\n", "pool.pools[0]"},
		{"pool:\n  idle-timeout: 0s\n", "pool.idle-timeout"},
		{"pool:\n  requester-share: 1.5\n", "pool.requester-share"},
		{"pool:\n  grace: -1s\n", "pool.grace"},
		{"host:\n  link: \"\"\n", "host.link"},
		{"host:\n  link: a-very-long-link-name\n", "host.link"},
		{"host:\n  source4: 2001:db8::1\n", "host.source4"},
		{"host:\n  source6: fe80::1\n", "host.source6"},
		{"nft:\n  table: \"bad name\"\n", "nft.table"},
		{"nft:\n  mark: 0\n", "nft.mark"},
		{"nft:\n  mark: 0x1ffffffff\n", "nft.mark"},
		{"nft:\n  rules: sometimes\n", "nft.rules"},
		{"queue:\n  count: 65\n", "queue.count"},
		{"queue:\n  procs: -1\n", "queue.procs"},
		{"queue:\n  dns: 70000\n", "queue.dns"},
		{"queue:\n  tcp-gso: kernel\n", "queue.tcp-gso"},
		{"queue:\n  translation: -1\n", "queue.translation"},
		{"daemon:\n  state-dir: relative\n", "daemon.state-dir"},
		{"daemon:\n  status-socket: s.sock\n", "daemon.status-socket"},
		{"daemon:\n  metrics: 0.0.0.0:9642\n", "daemon.metrics"},
		{"daemon:\n  log-level: loud\n", "daemon.log-level"},
	} {
		_, err := Parse("bad.yaml", []byte(tc.yaml))
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Key != tc.key {
			t.Errorf("%q: error %v, want one naming %s", tc.yaml, err, tc.key)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error spans lines: %q", tc.yaml, err)
		}
	}
}
