package hostnet

import (
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/hostnet/nstest"
	"github.com/bih-nfq/bih-nfq/queue"
	"github.com/bih-nfq/bih-nfq/translate"
)

// rxBytes is what link has received so far.
func rxBytes(t *testing.T, ns *nstest.NS, link string) uint64 {
	t.Helper()
	var s []struct {
		Stats64 struct {
			RX struct{ Bytes uint64 } `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(ns.Run(t, "ip", "-s", "-j", "link", "show", link)), &s); err != nil || len(s) != 1 {
		t.Fatalf("link stats of %s: %v", link, err)
	}
	return s[0].Stats64.RX.Bytes
}

func TestOpenWhole(t *testing.T) {
	ns := lab(t, true)
	before := snapshot(t, ns)
	// The default router answers no Neighbor Solicitation: a static entry.
	ns.Run(t, "ip", "-6", "neigh", "add", "2001:db8:1::1", "lladdr", "02:00:00:00:00:01", "dev", "veth0")
	h, err := Setup(Config{Pools: []netip.Prefix{primary}, MachineIDPath: machineID(t, "whole")}, Options{NetNS: ns.Fd(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Teardown()
	f, err := h.OpenWhole()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := h.sysctl("net.ipv6.conf.bih0.force_forwarding"); v != "1" {
		t.Errorf("force_forwarding on bih0 = %q, want 1", v)
	}
	if v, _ := h.sysctl("net.ipv6.conf.all.forwarding"); v != "0" {
		t.Errorf("the host as a whole forwards now: %q", v)
	}
	if link := ns.Run(t, "ip", "-d", "link", "show", "bih0"); !strings.Contains(link, "vnet_hdr on") || !strings.Contains(link, "qlen 16") {
		t.Errorf("bih0 after OpenWhole:\n%s", link)
	}

	// A 12,000-byte TCP super-packet written whole leaves through the
	// uplink, forwarded and cut by the kernel.
	em, err := queue.NewEmitter(queue.EmitterConfig{NetNS: ns.Fd(), TUN: f})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	const data = 12000
	pkt := make([]byte, 40+20+data)
	pkt[0] = 0x60
	binary.BigEndian.PutUint16(pkt[4:], 20+data)
	pkt[6], pkt[7] = 6, 64
	src, dst := h.Source6().As16(), netip.MustParseAddr("2001:db8:99::1").As16()
	copy(pkt[8:], src[:])
	copy(pkt[24:], dst[:])
	th := pkt[40:]
	binary.BigEndian.PutUint16(th[0:], 40000)
	binary.BigEndian.PutUint16(th[2:], 80)
	th[12], th[13] = 5<<4, 0x10 // ACK
	var ph [40]byte
	copy(ph[:], pkt[8:40])
	binary.BigEndian.PutUint32(ph[32:], 20+data)
	ph[39] = 6
	binary.BigEndian.PutUint16(th[16:], translate.Sum(ph[:], 0)) // partial: pseudo-header only
	rx0 := rxBytes(t, ns, "veth1")
	if err := em.AddWhole(pkt, 1200); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for rxBytes(t, ns, "veth1")-rx0 < data && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := rxBytes(t, ns, "veth1") - rx0; got < data {
		t.Fatalf("the uplink's peer received %d bytes, want the %d-byte super-packet's segments", got, data)
	}

	f.Close()
	if err := h.Teardown(); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "ip", "-6", "neigh", "del", "2001:db8:1::1", "dev", "veth0")
	if after := snapshot(t, ns); after != before {
		t.Fatalf("Teardown left changes:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
