package replay

import (
	"encoding/binary"
	"fmt"

	"github.com/gopacket/gopacket/layers"
)

// Network says what a frame carries once its link-layer header is removed.
type Network uint8

const (
	// NotIP: a frame of another protocol (ARP, LLDP, ...); it is passed.
	NotIP Network = iota
	// IPv4 and IPv6: the payload goes to the translator of that family.
	IPv4
	IPv6
	// ShortFrame: the frame ends inside its link-layer header.
	ShortFrame
)

// EtherTypes that matter here.
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100 // IEEE 802.1Q
	etherTypeQinQ = 0x88a8 // IEEE 802.1ad service tag
)

// Link-layer header sizes.
const (
	ethernetLen  = 14 // dst(6) src(6) type(2)
	vlanTagLen   = 4  // TCI(2) type(2)
	maxVLANTags  = 2  // 802.1ad outer + 802.1Q inner
	sllLen       = 16 // pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
	sllProtoOff  = 14
	sll2Len      = 20 // protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)
	sll2ProtoOff = 0
)

// StripLink removes the link-layer header of a frame of link type lt and
// returns the network-layer bytes, a subslice of frame (never a copy).
// Unsupported link types are an error: the whole capture cannot be replayed
// meaningfully. A frame too short for its header returns ShortFrame.
func StripLink(lt layers.LinkType, frame []byte) ([]byte, Network, error) {
	switch lt {
	case layers.LinkTypeRaw:
		// Raw IP: the version nibble says which family. Anything else goes to
		// the IPv4 translator, which refuses it with bad_version.
		if len(frame) > 0 && frame[0]>>4 == 6 {
			return frame, IPv6, nil
		}
		return frame, IPv4, nil
	case layers.LinkTypeIPv4:
		return frame, IPv4, nil
	case layers.LinkTypeIPv6:
		return frame, IPv6, nil
	case layers.LinkTypeEthernet:
		if len(frame) < ethernetLen {
			return nil, ShortFrame, nil
		}
		et := binary.BigEndian.Uint16(frame[12:14])
		off := ethernetLen
		for tags := 0; (et == etherTypeVLAN || et == etherTypeQinQ) && tags < maxVLANTags; tags++ {
			if len(frame) < off+vlanTagLen {
				return nil, ShortFrame, nil
			}
			et = binary.BigEndian.Uint16(frame[off+2 : off+4])
			off += vlanTagLen
		}
		return byEtherType(et, frame[off:])
	case layers.LinkTypeLinuxSLL:
		if len(frame) < sllLen {
			return nil, ShortFrame, nil
		}
		return byEtherType(binary.BigEndian.Uint16(frame[sllProtoOff:sllProtoOff+2]), frame[sllLen:])
	case layers.LinkTypeLinuxSLL2:
		if len(frame) < sll2Len {
			return nil, ShortFrame, nil
		}
		return byEtherType(binary.BigEndian.Uint16(frame[sll2ProtoOff:sll2ProtoOff+2]), frame[sll2Len:])
	}
	return nil, NotIP, fmt.Errorf("unsupported link type %s (want RAW, IPV4, IPV6, ETHERNET, LINUX_SLL or LINUX_SLL2)", linkTypeName(lt))
}

func byEtherType(et uint16, payload []byte) ([]byte, Network, error) {
	switch et {
	case etherTypeIPv4:
		return payload, IPv4, nil
	case etherTypeIPv6:
		return payload, IPv6, nil
	}
	return nil, NotIP, nil
}
