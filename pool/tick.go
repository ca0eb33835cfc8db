package pool

// Tick reads Config.Clock and advances the coarse clock with which the data
// path records use. The pool's ticker does this every ClockResolution of
// wall time; a caller whose Clock follows something else (offline replay
// follows a capture's timestamps) calls Tick after moving it, so that use is
// recorded at the same times on every run.
func (p *Pool) Tick() { p.tick() }
