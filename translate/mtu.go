package translate

// MTUs returns the next-hop MTUs the Translator works to (Config.IPv6MTU
// and Config.IPv4MTU after defaults): a caller that cuts TCP super-packets
// into segments before translation keeps each one within them.
func (t *Translator) MTUs() (ipv6, ipv4 int) { return t.cfg.IPv6MTU, t.cfg.IPv4MTU }
