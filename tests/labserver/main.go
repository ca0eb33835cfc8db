// Command labserver is the lab's web server: it serves deterministic bodies of
// any size so tests can check a download's sha256 without shipping files.
//
//	GET /bytes/N   N bytes of a fixed pseudo-random stream (seeded by N)
//	GET /sha256/N  the hex sha256 of /bytes/N
//	POST /upload   the hex sha256 and length of the request body
//	GET /          "hello from the IPv6-only server; you came from ADDR"
//
// With -udp it also answers each UDP datagram with "LEN FROM" (its length and
// source), so tests can see a fragmented datagram arrive whole.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBytes bounds what one request may ask for.
const maxBytes = 1 << 30

// stream is the deterministic body of /bytes/N.
func stream(n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8(seed(n)), n)
}

func seed(n int64) [32]byte {
	var s [32]byte
	copy(s[:], "bih-nfq lab "+strconv.FormatInt(n, 10))
	return s
}

func size(w http.ResponseWriter, r *http.Request, prefix string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, prefix), 10, 64)
	if err != nil || n < 0 || n > maxBytes {
		http.Error(w, "bad size", http.StatusBadRequest)
		return 0, false
	}
	return n, true
}

func main() {
	listen := flag.String("listen", "[::]:80", "address to listen on")
	udp := flag.String("udp", "", "UDP address for the length echo (off if empty)")
	flag.Parse()
	if *udp != "" {
		pc, err := net.ListenPacket("udp", *udp)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			buf := make([]byte, 65536)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					log.Fatal(err)
				}
				fmt.Fprintf(writerTo{pc, from}, "%d %s", n, from)
			}
		}()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/bytes/", func(w http.ResponseWriter, r *http.Request) {
		n, ok := size(w, r, "/bytes/")
		if !ok {
			return
		}
		// Tests read who fetched what from the log.
		log.Printf("GET %s from %s", r.URL.Path, r.RemoteAddr)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, stream(n))
	})
	mux.HandleFunc("/sha256/", func(w http.ResponseWriter, r *http.Request) {
		n, ok := size(w, r, "/sha256/")
		if !ok {
			return
		}
		h := sha256.New()
		io.Copy(h, stream(n))
		fmt.Fprintln(w, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			http.Error(w, "POST or PUT", http.StatusMethodNotAllowed)
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, io.LimitReader(r.Body, maxBytes))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %d\n", hex.EncodeToString(h.Sum(nil)), n)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the IPv6-only server; you came from %s\n", r.RemoteAddr)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// writerTo adapts a PacketConn reply to io.Writer.
type writerTo struct {
	pc net.PacketConn
	to net.Addr
}

func (w writerTo) Write(b []byte) (int, error) { return w.pc.WriteTo(b, w.to) }
