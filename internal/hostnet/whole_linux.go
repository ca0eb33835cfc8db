package hostnet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNoLinkForwarding is OpenWhole's error on a kernel without per-link
// IPv6 forwarding (net.ipv6.conf.<link>.force_forwarding, Linux 6.17) when
// forwarding is off for the host as a whole.
var ErrNoLinkForwarding = errors.New("the kernel has no per-link IPv6 forwarding (force_forwarding) and net.ipv6.conf.all.forwarding is 0")

// wholeQueueLen bounds what the TUN link holds for a reader that never
// reads: nothing but a stray packet ever reaches its transmit side.
const wholeQueueLen = 16

// OpenWhole opens the TUN link for writing IPv6 packets with a virtio-net
// header (IFF_VNET_HDR), so that TCP super-packets enter whole and the
// kernel cuts them as late as the outgoing device allows. Packets written
// there are forwarded, so IPv6 is enabled on the link and forwarding turned
// on for it alone (force_forwarding) unless the host forwards already; the
// link's removal undoes both. The caller closes the file, before Teardown.
func (h *Host) OpenWhole() (*os.File, error) {
	name := h.cfg.LinkName
	if err := h.setSysctl("net.ipv6.conf."+name+".disable_ipv6", "0"); err != nil {
		return nil, fmt.Errorf("enable IPv6 on %s: %w", name, err)
	}
	if v, err := h.sysctl("net.ipv6.conf.all.forwarding"); err != nil || v != "1" {
		err := h.setSysctl("net.ipv6.conf."+name+".force_forwarding", "1")
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNoLinkForwarding
		}
		if err != nil {
			return nil, fmt.Errorf("forwarding on %s: %w", name, err)
		}
	}
	if err := h.nl.LinkSetTxQLen(h.link, wholeQueueLen); err != nil {
		return nil, fmt.Errorf("queue length of %s: %w", name, err)
	}
	var f *os.File
	err := inNS(h.opt.NetNS, func() error {
		fd, err := attachTUN(name, unix.IFF_VNET_HDR)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}
