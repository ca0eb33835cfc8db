package nft

import (
	"fmt"

	"github.com/google/nftables"
)

// DroppingForward lists the ip6 and inet base chains at the forward hook
// whose policy is drop ("family table chain"): on such a host, packets the
// kernel forwards for the daemon (TCP super-packets written whole into its
// TUN link) pass only if the sysadmin's rules accept them.
func DroppingForward(opt Options) ([]string, error) {
	c, err := opt.conn()
	if err != nil {
		return nil, err
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	var out []string
	for _, ch := range chains {
		if ch.Table == nil || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward ||
			ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop {
			continue
		}
		switch ch.Table.Family {
		case nftables.TableFamilyIPv6:
			out = append(out, "ip6 "+ch.Table.Name+" "+ch.Name)
		case nftables.TableFamilyINet:
			out = append(out, "inet "+ch.Table.Name+" "+ch.Name)
		}
	}
	return out, nil
}
