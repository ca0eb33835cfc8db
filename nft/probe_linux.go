package nft

import (
	"errors"
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Probe finds the queue backend this kernel supports: it adds a queue rule
// to a throwaway table and deletes the table in the same batch, so nothing
// is ever left behind. Native is preferred; the result is logged.
func Probe(opt Options) (Backend, error) {
	log := opt.logger()
	errNative := probeQueue(opt, BackendNative)
	if errNative == nil {
		log.Info("nft queue backend", "backend", BackendNative)
		return BackendNative, nil
	}
	errCompat := probeQueue(opt, BackendCompat)
	if errCompat == nil {
		log.Info("nft queue backend", "backend", BackendCompat,
			"reason", fmt.Sprintf("native queue expression refused: %v", errNative))
		return BackendCompat, nil
	}
	return BackendUnknown, fmt.Errorf("probe queue backend: native: %w", errors.Join(errNative,
		fmt.Errorf("xtables NFQUEUE target: %w", errCompat)))
}

func probeQueue(opt Options, be Backend) error {
	c, err := opt.conn()
	if err != nil {
		return err
	}
	q, err := queueExpr(Queue{Num: 0, Count: 1, Bypass: true}, be)
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: fmt.Sprintf("bih_nfq_probe_%d", os.Getpid())})
	ch := c.AddChain(&nftables.Chain{Name: "probe", Table: t})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{q}})
	c.DelTable(t)
	return c.Flush()
}
