package hostnet

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Watch delivers an Event for every IPv4 link, address or route change and
// every link change, with the native IPv4 state after it (our link,
// linkName, excluded). The channel closes when ctx ends. Events are not
// dropped: a slow reader slows the watch.
func Watch(ctx context.Context, linkName string, opt Options) (<-chan Event, error) {
	nl, err := opt.handle()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	var ns *netns.NsHandle
	if opt.NetNS != 0 {
		h := netns.NsHandle(opt.NetNS)
		ns = &h
	}
	log := opt.logger()
	errf := func(err error) {
		// Closing the subscriptions at shutdown makes their reads fail.
		if ctx.Err() == nil {
			log.Warn("host network watch", "err", err)
		}
	}
	done := make(chan struct{})
	links := make(chan netlink.LinkUpdate, 16)
	addrs := make(chan netlink.AddrUpdate, 16)
	routes := make(chan netlink.RouteUpdate, 16)
	fail := func(err error) (<-chan Event, error) {
		close(done)
		nl.Close()
		return nil, fmt.Errorf("watch: %w", err)
	}
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{Namespace: ns, ErrorCallback: errf}); err != nil {
		return fail(err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{Namespace: ns, ErrorCallback: errf}); err != nil {
		return fail(err)
	}
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{Namespace: ns, ErrorCallback: errf}); err != nil {
		return fail(err)
	}
	out := make(chan Event)
	go func() {
		defer close(out)
		defer nl.Close()
		defer func() {
			close(done)
			// The subscriptions close their channels once they stop;
			// drain so none stays blocked on a send.
			go func() {
				for range links {
				}
			}()
			go func() {
				for range addrs {
				}
			}()
			go func() {
				for range routes {
				}
			}()
		}()
		for {
			var kind EventKind
			select {
			case <-ctx.Done():
				return
			case _, ok := <-links:
				if !ok {
					return
				}
				kind = LinkChanged
			case u, ok := <-addrs:
				if !ok {
					return
				}
				if u.LinkAddress.IP.To4() == nil {
					continue
				}
				kind = AddrChanged
			case u, ok := <-routes:
				if !ok {
					return
				}
				if u.Family != netlink.FAMILY_V4 {
					continue
				}
				kind = RouteChanged
			}
			n, err := native4(nl, linkName, opt.IgnoreLinks)
			if err != nil {
				errf(err)
				continue
			}
			select {
			case out <- Event{Kind: kind, Native4: n}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// CurrentNative4 reads the native IPv4 state now.
func CurrentNative4(linkName string, opt Options) (Native4, error) {
	nl, err := opt.handle()
	if err != nil {
		return Native4{}, fmt.Errorf("native IPv4 state: %w", err)
	}
	defer nl.Close()
	n, err := native4(nl, linkName, opt.IgnoreLinks)
	if err != nil {
		return Native4{}, fmt.Errorf("native IPv4 state: %w", err)
	}
	return n, nil
}
